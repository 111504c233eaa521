"""Regenerate examples/data/reviews-*.jsonl: a small synthetic chat task a tiny model can learn.

Each conversation asks for the sentiment of a short product review; the assistant answers
`positive` or `negative`. Held-out reviews are new combinations of aspects, adjectives and
templates, so exact-match on them measures generalisation, not memorisation.
Deterministic: `python examples/make_demo_data.py` rewrites the same bytes.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

SYSTEM = "Label the sentiment of the review as positive or negative."
ASPECTS = ["battery", "screen", "sound", "camera", "price", "delivery", "design", "service", "coffee",
           "hotel room", "staff", "software update", "shoes", "jacket", "game", "music", "story", "food"]
POSITIVE = ["excellent", "wonderful", "amazing", "fantastic", "superb", "delightful", "perfect", "lovely",
            "brilliant", "pleasant", "reliable", "sturdy", "great", "good"]
NEGATIVE = ["terrible", "awful", "horrible", "dreadful", "disappointing", "broken", "poor", "useless",
            "flimsy", "noisy", "rude", "dirty", "boring", "bad"]
TEMPLATES = [
    "The {a1} is {w1}.",
    "The {a1} is {w1} and the {a2} is {w2}.",
    "I think the {a1} was {w1}.",
    "Honestly the {a1} felt {w1}, and the {a2} was {w2} too.",
    "My {a1} arrived and it is {w1}.",
    "What a {w1} {a1}!",
    "The {a1} was {w1}. The {a2} was {w2}.",
    "After a week the {a1} is still {w1}.",
]


def make(rng: random.Random, n: int) -> list[dict]:
    rows = []
    for _ in range(n):
        label = rng.choice(["positive", "negative"])
        words = POSITIVE if label == "positive" else NEGATIVE
        a1, a2 = rng.sample(ASPECTS, 2)
        text = rng.choice(TEMPLATES).format(a1=a1, a2=a2, w1=rng.choice(words), w2=rng.choice(words))
        rows.append({"messages": [
            {"role": "system", "content": SYSTEM},
            {"role": "user", "content": f"Review: {text}"},
            {"role": "assistant", "content": label},
        ]})
    return rows


def main() -> None:
    rng = random.Random(7)
    train = make(rng, 480)
    seen = {r["messages"][1]["content"] for r in train}
    heldout = [r for r in make(rng, 200) if r["messages"][1]["content"] not in seen][:80]
    out = Path(__file__).parent / "data"
    out.mkdir(exist_ok=True)
    for name, rows in (("reviews-train.jsonl", train), ("reviews-heldout.jsonl", heldout)):
        (out / name).write_text("".join(json.dumps(r) + "\n" for r in rows))
        print(f"wrote {len(rows)} conversations to {out / name}")


if __name__ == "__main__":
    main()
