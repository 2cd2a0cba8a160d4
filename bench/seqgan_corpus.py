"""Writes kgen/data/files/text_corpus.txt: the small English-like corpus bundled for `text` data.

Generated offline from a fixed-seed probabilistic grammar of short sentences (kgen's own
text, public domain), so that the recipe and the tests have text with learnable structure
(spelling, word order, punctuation) without any download. Run from the repository root:

    python bench/seqgan_corpus.py
"""

import pathlib
import random

SUBJECTS = ["the cat", "the old dog", "a small bird", "the farmer", "my sister", "the teacher", "a young fox",
            "the miller", "our neighbour", "the sailor", "a tired horse", "the baker", "the children", "an owl"]
VERBS = ["sees", "finds", "follows", "watches", "carries", "paints", "calls", "counts", "helps", "remembers"]
OBJECTS = ["the red apple", "a quiet river", "the long road", "seven stones", "the open window", "a blue boat",
           "the garden gate", "an empty basket", "the morning bell", "a paper kite", "the green hill", "the moon"]
PLACES = ["in the village", "near the bridge", "under the old tree", "by the sea", "at the market",
          "behind the barn", "on the hill", "in the kitchen", "across the field", "beside the well"]
TIMES = ["in the morning", "at noon", "before the rain", "after supper", "every spring", "at night",
         "on sunday", "when the wind is still", "in the winter", "at dawn"]
ADJECTIVES = ["quiet", "bright", "cold", "warm", "golden", "heavy", "gentle", "strange", "happy", "grey"]
NOUNS = ["day", "evening", "song", "story", "journey", "house", "letter", "meadow", "harbour", "lantern"]


def sentence(rng):
    kind = rng.random()
    if kind < 0.4:
        s = f"{rng.choice(SUBJECTS)} {rng.choice(VERBS)} {rng.choice(OBJECTS)} {rng.choice(PLACES)}"
    elif kind < 0.6:
        s = f"{rng.choice(TIMES)}, {rng.choice(SUBJECTS)} {rng.choice(VERBS)} {rng.choice(OBJECTS)}"
    elif kind < 0.75:
        s = f"it was a {rng.choice(ADJECTIVES)} {rng.choice(NOUNS)} {rng.choice(PLACES)}"
    elif kind < 0.9:
        s = (f"{rng.choice(SUBJECTS)} {rng.choice(VERBS)} {rng.choice(OBJECTS)}, and "
             f"{rng.choice(SUBJECTS)} {rng.choice(VERBS)} {rng.choice(OBJECTS)}")
    else:
        s = f"does {rng.choice(SUBJECTS)} see {rng.choice(OBJECTS)} {rng.choice(TIMES)}"
        return s[0].upper() + s[1:] + "?"
    return s[0].upper() + s[1:] + "."


def corpus(seed=0, size=60_000):
    rng = random.Random(seed)
    paragraphs, total = [], 0
    while total < size:
        text = " ".join(sentence(rng) for _ in range(rng.randint(3, 7)))
        paragraphs.append(text)
        total += len(text) + 1
    return "\n".join(paragraphs) + "\n"


if __name__ == "__main__":
    out = pathlib.Path(__file__).resolve().parents[1] / "kgen" / "data" / "files" / "text_corpus.txt"
    out.write_text(corpus(), encoding="utf-8")
    print(f"wrote {out} ({out.stat().st_size} bytes)")
