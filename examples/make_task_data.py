"""Regenerate examples/data/<task>-{train,heldout}.*: one small synthetic dataset per task, each
designed so the built-in tiny Phi-3 (random weights, 0.4 M parameters) learns it in well under a
minute on CPU, and each in the data format Azure ML's fine-tuning components use.

- classification (CSV: sentence1,label): the sentiment of a short templated review; 3 labels.
- ner (JSONL: tokens, ner_tags): a person or a place (or both, or none) in short sentences, BIO tags,
  multi-word places.
- qa (JSONL: question, context, answer): the answer is the color in the one sentence "the X is COLOR".
- translation (JSONL: en, fr): a word-substitution cipher over a tiny vocabulary ("fr" is the cipher).
- summarization (JSONL: document, summary): the summary is the one sentence that starts "in short".
- completion (JSONL: text): short formulaic stories, for domain adaptation / creative generation.
Held-out records are new combinations (never a training record), so scores measure generalisation.
Deterministic: `python examples/make_task_data.py` rewrites the same bytes.
"""

from __future__ import annotations

import csv
import io
import json
import random
from pathlib import Path

OUT = Path(__file__).parent / "data"

ASPECTS = ["battery", "screen", "sound", "camera", "price", "delivery", "design", "service", "coffee", "food",
           "room", "staff", "shoes", "jacket", "game", "music", "story", "phone", "laptop", "book", "movie"]
SENTIMENT = {
    "positive": ["excellent", "wonderful", "amazing", "fantastic", "superb", "lovely", "brilliant", "great", "good"],
    "negative": ["terrible", "awful", "horrible", "dreadful", "useless", "flimsy", "noisy", "boring", "bad"],
    "neutral": ["old", "new", "small", "large", "long", "short", "simple", "different", "same"],
}
REVIEW_TEMPLATES = ["the {a} is {w}", "my {a} was {w}", "i think the {a} is {w}", "the {a} felt {w} today",
                    "what a {w} {a}", "this {a} is really {w}"]

PEOPLE = ["mother", "father", "teacher", "friend", "president", "doctor", "kid", "woman", "man", "girl"]
COLORS = ["red", "blue", "green", "yellow", "black", "white", "orange", "purple", "brown", "gray", "pink"]
PLACES = ["city", "river", "mountain", "ocean", "forest", "desert", "hotel", "restaurant", "office", "house"]
NER_PEOPLE = ["mother", "father", "teacher", "friend", "doctor", "president"]
NER_PLACES = ["city", "river", "mountain", "ocean", "forest", "desert"]
NER_COLORS = ["red", "blue", "green", "black"]
NER_TEMPLATES = [  # mostly one entity: a tiny random model learns to copy one span quickly
    "the {p} went home", "we saw the {p} today", "the {p} was happy", "it was the {p}",
    "we went to the {l}", "the {l} was cold", "they live near the {l}", "it rained on the {l}",
    "the {p} went to the {l}", "nothing happened today",
]
THINGS = ["box", "car", "door", "book", "hat", "cup", "bag", "ball", "shoe", "phone", "chair", "lamp"]

CIPHER_SOURCE = ["the", "a", "man", "woman", "child", "dog", "cat", "bird", "sees", "likes", "has", "finds",
                 "red", "blue", "green", "big", "small", "old", "new", "ball", "house", "car", "book", "tree"]
CIPHER_TARGET = ["lo", "un", "om", "fem", "kin", "hund", "gat", "vog", "vei", "ama", "tem", "tro",
                 "ros", "azu", "ver", "gra", "pet", "vie", "nov", "bal", "cas", "aut", "lib", "arb"]

FILLER = ["the sky was gray all week", "many people came to the city", "the river is long and cold",
          "our team played a game", "the office was open late", "a friend brought coffee",
          "the teacher wrote a long book", "the hotel room was small", "they moved to a new house",
          "the music was loud at night", "the children ran in the park", "it rained on monday"]
QA_FILLER = ["many people came to the city", "the river is long and cold", "our team played a game",
             "the office was open late", "a friend brought coffee", "the teacher wrote a long book",
             "they moved to a new house", "the music was loud at night", "it rained on monday"]
KEY_FACTS = ["the {t} was {c}", "the {t} looked {c} and new", "we found a {c} {t}", "the {c} {t} was broken"]

STORY_OPENINGS = ["once upon a time", "long ago", "one cold morning", "late one night", "on a warm day"]
STORY_HEROES = ["a young girl", "an old man", "a small dog", "a brave teacher", "a little bird", "a tired friend"]
STORY_ACTIONS = ["walked to the river", "climbed the mountain", "found a red book", "opened the old door",
                 "sang a happy song", "lost a blue hat", "met a kind woman", "built a small house"]
STORY_ENDINGS = ["and everyone was happy", "and the day was over", "and they went home", "and it began to rain",
                 "and the world was quiet", "and nobody knew why"]


def classification(rng: random.Random) -> dict:
    label = rng.choice(sorted(SENTIMENT))
    text = rng.choice(REVIEW_TEMPLATES).format(a=rng.choice(ASPECTS), w=rng.choice(SENTIMENT[label]))
    return {"sentence1": text, "label": label}


def _place(rng: random.Random) -> list[str]:
    return [rng.choice(NER_COLORS), rng.choice(NER_PLACES)] if rng.random() < 0.4 else [rng.choice(NER_PLACES)]


def ner(rng: random.Random) -> dict:
    template = rng.choice(NER_TEMPLATES)
    p, q = rng.sample(NER_PEOPLE, 2)
    l, m = _place(rng), _place(rng)
    tokens: list[str] = []
    tags: list[str] = []
    for word in template.split():
        entity = {"{p}": ([p], "PER"), "{q}": ([q], "PER"), "{l}": (l, "LOC"), "{m}": (m, "LOC")}.get(word)
        if entity is None:
            tokens.append(word)
            tags.append("O")
        else:
            words, kind = entity
            tokens.extend(words)
            tags.extend([f"B-{kind}"] + [f"I-{kind}"] * (len(words) - 1))
    return {"tokens": tokens, "ner_tags": tags}


def qa(rng: random.Random) -> dict:
    thing, color = rng.choice(THINGS), rng.choice(COLORS)
    sentences = rng.sample(QA_FILLER, 2)
    sentences.insert(rng.randrange(3), f"the {thing} is {color}")
    return {"question": f"what color is the {thing}?", "context": ". ".join(sentences) + ".", "answer": color}


def translation(rng: random.Random) -> dict:
    cipher = dict(zip(CIPHER_SOURCE, CIPHER_TARGET))
    nouns, verbs, adjs = CIPHER_SOURCE[2:8] + CIPHER_SOURCE[19:], CIPHER_SOURCE[8:12], CIPHER_SOURCE[12:19]
    words = [rng.choice(["the", "a"]), rng.choice(adjs), rng.choice(nouns), rng.choice(verbs),
             rng.choice(["the", "a"]), rng.choice(nouns)]
    if rng.random() < 0.5:
        del words[1]
    return {"en": " ".join(words), "fr": " ".join(cipher[w] for w in words)}


def summarization(rng: random.Random) -> dict:
    key = rng.choice(KEY_FACTS).format(t=rng.choice(THINGS), c=rng.choice(COLORS))
    sentences = rng.sample(FILLER, 2)
    sentences.insert(rng.randrange(3), f"in short, {key}")
    return {"document": ". ".join(sentences) + ".", "summary": key}


def completion(rng: random.Random) -> dict:
    return {"text": f"{rng.choice(STORY_OPENINGS)}, {rng.choice(STORY_HEROES)} {rng.choice(STORY_ACTIONS)} "
                    f"{rng.choice(STORY_ENDINGS)}."}


TASKS = {  # name: (generator, seed, train size, held-out size, file suffix)
    "classification": (classification, 11, 360, 60, ".csv"),
    "ner": (ner, 12, 360, 60, ".jsonl"),
    "qa": (qa, 13, 360, 60, ".jsonl"),
    "translation": (translation, 14, 360, 60, ".jsonl"),
    "summarization": (summarization, 15, 360, 60, ".jsonl"),
    "completion": (completion, 16, 300, 60, ".jsonl"),
}


def split(make, seed: int, n_train: int, n_heldout: int) -> tuple[list[dict], list[dict]]:
    rng = random.Random(seed)
    train = [make(rng) for _ in range(n_train)]
    seen = {json.dumps(r, sort_keys=True) for r in train}
    heldout: list[dict] = []
    while len(heldout) < n_heldout:
        record = make(rng)
        key = json.dumps(record, sort_keys=True)
        if key not in seen:
            seen.add(key)
            heldout.append(record)
    return train, heldout


def dump(rows: list[dict], suffix: str) -> str:
    if suffix == ".csv":
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=list(rows[0]), lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
        return buffer.getvalue()
    return "".join(json.dumps(r) + "\n" for r in rows)


def main() -> None:
    OUT.mkdir(exist_ok=True)
    for name, (make, seed, n_train, n_heldout, suffix) in TASKS.items():
        train, heldout = split(make, seed, n_train, n_heldout)
        for part, rows in (("train", train), ("heldout", heldout)):
            path = OUT / f"{name}-{part}{suffix}"
            path.write_text(dump(rows, suffix))
            print(f"wrote {len(rows)} records to {path}")


if __name__ == "__main__":
    main()
