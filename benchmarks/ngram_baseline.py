"""How much a text gives any model to learn: a smoothed count model on the split `train` makes.

    python benchmarks/ngram_baseline.py benchmarks/data/chinese/chinese.txt

Holds out the last 10% of the text (as `charrnn train` does for one document) and scores it, in nats/char,
with a unigram (add-1/2) and an interpolated Kneser-Ney bigram (absolute discount 0.75, the unigram by
continuation counts), every character of the file in the vocabulary (as the run's vocabulary holds them).
Also reports the share of held-out characters the training text never has: a model can only guess at those.
"""

from __future__ import annotations

import argparse
import math
from collections import Counter

from charrnn.text.data import train_length

DISCOUNT = 0.75


def scores(text: str, val_frac: float = 0.1) -> dict:
    cut = train_length(len(text), val_frac)
    train, val = text[:cut], text[cut:]
    vocab = len(set(text)) + 1  # + EOS, as charrnn's vocabulary
    unigrams = Counter(train)
    pairs = Counter(zip(train, train[1:], strict=False))
    context = Counter(train[:-1])
    followers = Counter(a for a, _ in pairs)  # distinct characters seen after each character
    continuation = Counter(b for _, b in pairs)  # distinct characters seen before each character

    def p_continuation(c: str) -> float:
        return (continuation[c] + 0.5) / (len(pairs) + 0.5 * vocab)

    def p_bigram(a: str, c: str) -> float:
        n = context.get(a, 0)
        if n == 0:
            return p_continuation(c)
        return max(pairs.get((a, c), 0) - DISCOUNT, 0) / n + DISCOUNT * followers[a] / n * p_continuation(c)

    unigram = -sum(math.log((unigrams[c] + 0.5) / (len(train) + 0.5 * vocab)) for c in val) / len(val)
    bigram = -sum(math.log(p_bigram(a, c)) for a, c in zip(val, val[1:], strict=False)) / (len(val) - 1)
    unseen = sum(1 for c in val if c not in unigrams) / len(val)
    return {"train_chars": len(train), "val_chars": len(val), "vocab": vocab, "unigram": unigram,
            "kn_bigram": bigram, "unseen_share": unseen}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("file")
    parser.add_argument("--val-frac", type=float, default=0.1)
    args = parser.parse_args()
    with open(args.file, encoding="utf-8") as f:
        s = scores(f.read(), args.val_frac)
    print(f"{args.file}: {s['train_chars']:,} training and {s['val_chars']:,} held-out characters, vocabulary "
          f"{s['vocab']:,}; held-out nats/char: unigram {s['unigram']:.4f}, Kneser-Ney bigram {s['kn_bigram']:.4f}; "
          f"{s['unseen_share']:.2%} of the held-out characters never occur in the training text")


if __name__ == "__main__":
    main()
