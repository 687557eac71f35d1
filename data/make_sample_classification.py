"""Writes the sample files of your-own-data classification in data/sample/: a 7-topic file with string labels
(topics_*.csv: text,label) and a sentence-pair file (pairs_*.jsonl: premise, hypothesis, label of entailment /
neutral / contradiction).

Templated so a tiny model learns them in seconds; they exist to exercise the pipeline, not to measure anything.
Rerun to regenerate: python data/make_sample_classification.py
"""
import csv
import json
import random
from pathlib import Path

# Words of the tiny test tokenizer's vocabulary (assets/tiny-bert), so that a tiny model can learn the topics
TOPICS = {
    "food": ["cheese", "fish", "salt", "grain"],
    "crafts": ["wool", "linen", "glass", "timber"],
    "transport": ["train", "railway", "bridge", "gate"],
    "film": ["film", "movie", "script", "soundtrack"],
    "town": ["mayor", "market", "church", "houses"],
    "rivers": ["river", "ouse", "avon", "kennet"],
    "people": ["anna", "clara", "elena", "felix"],
}
TOPIC_TEMPLATES = ["the {x} is old .", "this {x} was quiet today .", "i found the {x} and the {y} .",
                   "what about the {x} ?", "the main {x} is red .", "there is {x} , {y} and more ."]
PEOPLE = ["a man", "a woman", "two children", "an old farmer", "a student", "the chef", "a dog"]
ACTIONS = [("is playing a guitar", "is making music", "is sleeping"),
           ("is riding a bicycle", "is outside", "is sitting on a sofa"),
           ("is cooking dinner", "is in a kitchen", "is swimming in a lake"),
           ("is reading a book", "is holding a book", "is running a marathon")]


def topic_rows(rng, count):
    rows = []
    for i in range(count):
        label = list(TOPICS)[i % len(TOPICS)]
        x, y = rng.sample(TOPICS[label], 2)
        text = rng.choice(TOPIC_TEMPLATES).format(x=x, y=y)
        rows.append({"text": text, "label": label})
    rng.shuffle(rows)
    return rows


def pair_rows(rng, count):
    rows = []
    for _ in range(count):
        person = rng.choice(PEOPLE)
        action, entailed, contradicted = rng.choice(ACTIONS)
        label = rng.choice(["entailment", "neutral", "contradiction"])
        hypothesis = {"entailment": f"{person} {entailed}.", "contradiction": f"{person} {contradicted}.",
                      "neutral": f"{person} is {rng.choice(['happy', 'tired', 'famous', 'late'])}."}[label]
        rows.append({"premise": f"{person.capitalize()} {action}.", "hypothesis": hypothesis.capitalize(),
                     "label": label})
    return rows


def main():
    rng = random.Random(7)
    out = Path(__file__).parent / "sample"
    for split, count in [("train", 350), ("dev", 70)]:
        with open(out / f"topics_{split}.csv", "w", newline="", encoding="utf-8") as f:
            writer = csv.DictWriter(f, fieldnames=["text", "label"])
            writer.writeheader()
            writer.writerows(topic_rows(rng, count))
    for split, count in [("train", 300), ("dev", 60)]:
        lines = [json.dumps(row) for row in pair_rows(rng, count)]
        (out / f"pairs_{split}.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
