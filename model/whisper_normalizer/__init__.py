"""Whisper's English text normaliser, vendored from the openai-whisper sdist (MIT, see LICENSE).

The de-facto standard for scoring English speech recognition: published WERs of Whisper, and of
most models compared with it, are computed after this normaliser. Vendored rather than depended
on because the ``openai-whisper`` package pulls in its own torch and numba; this copy needs only
the standard library. ``model.scoring`` is the one place that uses it.
"""

from .english import EnglishTextNormalizer

__all__ = ["EnglishTextNormalizer"]
