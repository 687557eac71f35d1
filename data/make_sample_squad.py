"""Writes the SQuAD-shaped sample files in data/sample/:

- squad_train.json, squad_dev.json: the official nested layout (data -> paragraphs -> qas), v1.1 (every question
  answerable);
- squad_v2_train.json, squad_v2_dev.json: the v2.0 layout, with unanswerable questions (is_impossible, no answers);
- squad_test.json: flat rows (id, title, context, question) without answers, for --do_predict.

The paragraphs are templated facts about invented towns so that a tiny model learns them in seconds; they exist
to exercise the pipeline, not to measure anything. Rerun to regenerate: python data/make_sample_squad.py
"""
import json
import random
from pathlib import Path

TOWNS = ["Marlow", "Edgefield", "Brackenby", "Oakhurst", "Dunmere", "Halden", "Rivenford", "Ashcombe", "Thornwick",
         "Larkspur", "Westmoor", "Kelby", "Fennick", "Greywater", "Holloway", "Stonebridge", "Wrenham", "Corvale"]
FOUNDERS = ["Anna Berg", "Thomas Reed", "Clara Holt", "Peter Vance", "Maria Lind", "Hugo Stern", "Zoë Brandt",
            "José Ortega", "Søren Lund", "Elena Novak", "Felix Moreau", "Ingrid Dahl"]
RIVERS = ["Tess", "Avon", "Lune", "Wear", "Ouse", "Kennet", "Frome", "Exe"]
TRADES = ["wool", "timber", "salt", "cheese", "glass", "copper", "linen", "fish"]
BUILDINGS = ["old mill", "stone bridge", "clock tower", "red church", "grain hall", "north gate"]
SIZES = ["small", "quiet", "busy", "market", "river"]
YEARS = ["1120", "1284", "1350", "1466", "1547", "1602", "1688", "1745", "1801", "1873"]
PEOPLE = ["1,200", "3,400", "5,800", "12,000", "25,000", "40,000"]

# Each fact: the sentence stating it and the question it answers ({town} and the answer are filled in).
FACTS = {
    "founder": ("It was founded by {answer}.", "Who founded {town}?"),
    "year": ("The first houses were built in {answer}.", "When were the first houses of {town} built?"),
    "river": ("The town lies on the river {answer}.", "On which river does {town} lie?"),
    "trade": ("Its main trade is {answer}.", "What is the main trade of {town}?"),
    "building": ("Its most famous building is the {answer}.", "What is the most famous building in {town}?"),
    "people": ("Today about {answer} people live there.", "How many people live in {town}?"),
}
# v2 only: questions about facts the paragraph never states.
UNANSWERABLE = ["Who is the mayor of {town}?", "When did {town} get a railway?", "What is the main sport in {town}?"]


def make_paragraph(rng, town):
    values = {"founder": rng.choice(FOUNDERS), "year": rng.choice(YEARS), "river": rng.choice(RIVERS),
              "trade": rng.choice(TRADES), "building": rng.choice(BUILDINGS), "people": rng.choice(PEOPLE)}
    facts = list(FACTS)
    rng.shuffle(facts)  # the answer's position varies, so a model has to read the question
    context = f"{town} is a {rng.choice(SIZES)} town."
    qas = []
    for fact in facts:
        sentence, question = FACTS[fact]
        before = sentence[:sentence.index("{answer}")]
        answer_start = len(context) + 1 + len(before)
        context += " " + sentence.format(answer=values[fact])
        qas.append({"question": question.format(town=town),
                    "answers": [{"text": values[fact], "answer_start": answer_start}]})
    return context, qas


def make_articles(rng, towns, split, version_2):
    articles = []
    for town in towns:
        context, qas = make_paragraph(rng, town)
        if version_2:
            for question in rng.sample(UNANSWERABLE, 2):
                qas.append({"question": question.format(town=town), "answers": [], "is_impossible": True})
            for qa in qas:
                qa.setdefault("is_impossible", False)
        for i, qa in enumerate(qas):
            qa["id"] = f"{split}-{town.lower()}-{i}"
        articles.append({"title": town, "paragraphs": [{"context": context, "qas": qas}]})
    return articles


def main():
    rng = random.Random(7)
    out = Path(__file__).parent / "sample"
    out.mkdir(exist_ok=True)
    train_towns, dev_towns = TOWNS[:14], TOWNS[14:]

    def write(name, obj):
        (out / name).write_text(json.dumps(obj, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")

    for version, prefix in (("1.1", "squad"), ("v2.0", "squad_v2")):
        # 14 towns x 4 paragraphs x 6 questions = 336 training questions; dev 4 towns x 3 paragraphs = 72
        train = [a for _ in range(4) for a in make_articles(rng, train_towns, "train", prefix == "squad_v2")]
        dev = [a for _ in range(3) for a in make_articles(rng, dev_towns, "dev", prefix == "squad_v2")]
        for articles in (train, dev):  # ids of repeated towns must stay unique
            for n, article in enumerate(articles):
                for qa in article["paragraphs"][0]["qas"]:
                    qa["id"] = f"{qa['id']}-{n}"
        write(f"{prefix}_train.json", {"version": version, "data": train})
        write(f"{prefix}_dev.json", {"version": version, "data": dev})

    rows = []
    for n, town in enumerate(dev_towns * 3):
        context, qas = make_paragraph(rng, town)
        rows += [{"id": f"test-{n}-{i}", "title": town, "context": context, "question": qa["question"]}
                 for i, qa in enumerate(qas[:2])]
    write("squad_test.json", rows)


if __name__ == "__main__":
    main()
