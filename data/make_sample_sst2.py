"""Writes the SST-2-shaped sample files in data/sample/ (GLUE layout: tab-separated, bare quotes, no quoting).

The sentences are templated so a tiny model learns them in seconds; they exist to exercise the pipeline, not to
measure anything. Rerun to regenerate: python data/make_sample_sst2.py
"""
import random
from pathlib import Path

POSITIVE = ["wonderful", "moving", "funny", "brilliant", "charming", "gripping", "delightful", "smart", "warm", "superb"]
NEGATIVE = ["boring", "dull", "clumsy", "tedious", "awful", "lifeless", "flat", "shallow", "messy", "pointless"]
SUBJECTS = ["the film", "this movie", "the story", "the cast", "the script", "the director 's work", "the ending",
            "every scene", "the acting", "the soundtrack"]
TEMPLATES = ["{s} is {a} .", "{s} feels {a} and {b} .", "a {a} , {b} ride .", "i found {s} {a} .",
             "\"{a}\" is the word for {s} .", "{s} 's {a} tone makes it {b} .", "it 's {a} , plain and simple ."]


def make_rows(rng, count):
    rows = []
    for _ in range(count):
        label = rng.randint(0, 1)
        words = POSITIVE if label else NEGATIVE
        a, b = rng.sample(words, 2)
        sentence = rng.choice(TEMPLATES).format(s=rng.choice(SUBJECTS), a=a, b=b)
        if rng.random() < 0.05:  # a few sarcastic rows whose label disagrees with the words: the failure report
            label = 1 - label    # then has something to show
        rows.append((sentence, label))
    return rows


def main():
    rng = random.Random(13)
    out = Path(__file__).parent / "sample"
    out.mkdir(exist_ok=True)
    for split, count in [("train", 600), ("dev", 120)]:
        lines = ["sentence\tlabel"] + [f"{sentence} \t{label}" for sentence, label in make_rows(rng, count)]
        (out / f"sst2_{split}.tsv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    test = ["index\tsentence"] + [f"{i}\t{sentence} " for i, (sentence, _) in enumerate(make_rows(rng, 40))]
    (out / "sst2_test.tsv").write_text("\n".join(test) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
