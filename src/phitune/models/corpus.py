"""A deterministic English-like corpus for training the built-in BPE tokenizer offline.

Seeded sentences from a fixed word list (no stdlib docstrings: they differ between Python versions,
and the tokenizer must be byte-for-byte reproducible).
"""

from __future__ import annotations

import random

WORDS = """
the a an and or but if then when while because so that this these those it its they them their we us our
you your he she his her i me my is are was were be been being has have had do does did will would can
could should may might must not no yes all any some many much more most few less least each every other
one two three four five six seven eight nine ten first second third last next new old good bad great
small large long short high low big little early late young right left same different own best better
worse worst happy sad fast slow hot cold warm cool dark light open closed full empty easy hard simple
review product battery screen sound quality price service delivery food room staff design camera phone
laptop book movie music story plot actor hotel restaurant coffee shoes jacket software update app game
excellent wonderful amazing fantastic superb delightful perfect lovely brilliant pleasant reliable sturdy
terrible awful horrible dreadful disappointing broken poor useless flimsy noisy slow rude dirty boring
positive negative neutral label answer question context summary document translate sentence word words
time year day week month hour minute people person man woman child world life hand part place case
point group number system program question work government company fact water home room mother area
money story lot study book eye job word business issue side kind head house friend father power hour
game line end member law car city community name president team minute idea kid body information back
parent face others level office door health art war history party result change morning reason research
girl guy moment air teacher force education model data train test loss token layer weight learn learning
red blue green yellow black white orange purple brown gray pink city river mountain ocean forest desert
say said get got make made go went know knew take took see saw come came think thought look looked want
give gave use used find found tell told ask asked seem seemed feel felt try tried leave left call called
keep kept let begin began show showed hear heard play played run ran move moved live lived believe
bring brought happen happened write wrote provide sit stand lose pay meet include continue set learn
about above across after against along among around at before behind below beneath beside between
beyond by down during except for from in inside into near of off on onto out outside over past since
through throughout to toward under until up upon with within without very really quite too also just
""".split()

SYSTEM_WORDS = ["system", "user", "assistant", "end", "Hello", "Thanks", "Please", "Review", "Label"]


def tokenizer_corpus(n_sentences: int = 9000, seed: int = 1234) -> list[str]:
    """About 250 KB of sentences with punctuation, capitals and numbers."""
    rng = random.Random(seed)
    out: list[str] = []
    for i in range(n_sentences):
        n = rng.randint(4, 16)
        words = [rng.choice(WORDS) for _ in range(n)]
        if rng.random() < 0.3:
            words.insert(rng.randrange(len(words)), str(rng.randint(0, 2000)))
        if rng.random() < 0.1:
            words.insert(0, rng.choice(SYSTEM_WORDS))
        sentence = " ".join(words)
        sentence = sentence[0].upper() + sentence[1:]
        out.append(sentence + rng.choice([".", ".", ".", "?", "!", ":", ","]))
    return out
