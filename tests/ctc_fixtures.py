"""Log-probability fixtures for the CTC decoders: spell a text frame by frame, with chosen ambiguities."""

from __future__ import annotations

import torch

from model.tokens import Vocabulary

VOCAB = Vocabulary()
_INDEX = {s: i for i, s in enumerate(VOCAB.symbols)}
_INDEX["_"] = 0  # blank in a spec


def frames(spec: list[str | dict[str, float]]) -> torch.Tensor:
    """(T, V) log-probs; each frame is a symbol (probability 0.9) or {symbol: probability}; the
    rest of the mass is spread evenly over the other symbols. "_" is the blank."""
    rows = []
    for f in spec:
        probs = {f: 0.9} if isinstance(f, str) else f
        row = torch.full((len(VOCAB),), (1.0 - sum(probs.values())) / (len(VOCAB) - len(probs)))
        for sym, p in probs.items():
            row[_INDEX[sym]] = p
        rows.append(row)
    return torch.stack(rows).log()


def spell(text: str, ambiguous: dict[str, dict[str, float]] | None = None) -> torch.Tensor:
    """One frame per character with a blank between (so doubled letters survive); a character in
    ``ambiguous`` gets that distribution instead of a clear 0.9."""
    ambiguous = ambiguous or {}
    spec: list[str | dict[str, float]] = ["_"]
    for ch in text:
        spec += [ambiguous.get(ch, ch), "_"]
    return frames(spec)


# A tiny word LM's text: the sentences the decoder tests spell, and some near them.
LM_TEXT = [s.split() for s in [
    "the cat sat on the mat", "a cat sat on a hat", "the cat ran home", "the dog sat on the log",
    "turn on the light", "turn off the light", "there is a cat", "their cat sat there",
]]
