"""Builds assets/tiny-bert: a BERT config (2 layers, hidden 64) and an uncased WordPiece tokenizer, no weights.

The scripts start from it with `--config_name assets/tiny-bert --tokenizer_name assets/tiny-bert` (random init),
which is what the quickstart recipes and the offline tests use. Rerun to regenerate: python assets/make_tiny_bert.py
"""
import string
from collections import Counter
from pathlib import Path

from transformers import BertConfig, BertTokenizerFast

HERE = Path(__file__).parent
SPECIAL = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
# Every character gets a word-start and a continuation piece, so no ASCII text tokenizes to [UNK].
CHARS = list(string.ascii_lowercase + string.digits + string.punctuation)


def corpus_words():
    words = Counter()
    for path in sorted((HERE.parent / "data" / "sample").glob("*")):
        if path.suffix in {".tsv", ".json"}:
            text = path.read_text(encoding="utf-8").lower()
            words.update("".join(c if c.isalnum() else " " for c in text).split())
    return [w for w, n in words.most_common() if n >= 2 and len(w) > 1]


def main():
    out = HERE / "tiny-bert"
    out.mkdir(exist_ok=True)
    vocab = SPECIAL + CHARS + ["##" + c for c in string.ascii_lowercase + string.digits] + corpus_words()[:2000]
    vocab = list(dict.fromkeys(vocab))
    tokenizer = BertTokenizerFast(vocab={piece: i for i, piece in enumerate(vocab)}, do_lower_case=True,
                                  model_max_length=512)
    tokenizer.save_pretrained(out)
    config = BertConfig(vocab_size=len(vocab), hidden_size=64, num_hidden_layers=2, num_attention_heads=2,
                        intermediate_size=128, max_position_embeddings=512)
    config.save_pretrained(out)


if __name__ == "__main__":
    main()
