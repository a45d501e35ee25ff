"""Training data from manifests: normalised text, decoded audio, features, and the utterances skipped.

Bad data never stops a long run. Each utterance that cannot be used is skipped and counted under a
reason (``SKIP_REASONS``): the checks that need only the manifest run once when it is read; the
ones that need the audio (unreadable file, transcript too long for the frames CTC gets) run each
time the utterance is loaded, and their counts travel with the batch to the training loop, which
reports them at the end of each epoch.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from ..audio import AudioDecodeError, load_audio
from ..config import FeatureConfig
from ..features import FbankExtractor
from ..network import output_lengths
from ..tokens import Vocabulary, normalize_text
from .augment import augment_waveform, load_rirs, spec_augment, vtlp_factor
from .config import AugmentConfig
from .manifest import ManifestError, parse_manifest_arg, read_manifest

log = logging.getLogger(__name__)

SKIP_REASONS = {
    "empty_text": "transcript empty after normalisation",
    "unknown_chars": "characters outside the vocabulary",
    "too_long_audio": "longer than max_utterance_seconds",
    "text_too_long": "transcript too long for the audio (CTC cannot align it)",
    "unreadable_audio": "audio file missing or undecodable",
    "missing_audio": "audio file not found when the manifest was read",
}
# A manifest with more of its audio missing than this is refused: its paths are almost certainly
# wrong (say, a copy of a manifest whose paths are relative to another folder), not a few lost files.
MAX_MISSING_FRACTION = 0.5


# The decoders' own 16-bit scale: 16-bit sources (WAV, FLAC) survive the cache bit-exactly.
PCM_SCALE = 32768.0


def to_pcm16(wave: np.ndarray) -> np.ndarray:
    return np.clip(np.round(wave * PCM_SCALE), -32768, 32767).astype(np.int16)


@dataclass(frozen=True)
class TrainUtterance:
    audio: Path
    text: str  # normalised
    tokens: tuple[int, ...]
    duration: float  # seconds, from the manifest
    weight: float = 1.0  # its manifest's oversampling weight


def ctc_min_frames(tokens: Sequence[int]) -> int:
    """Output frames CTC needs for a label sequence: one per label plus a blank between repeats."""
    repeats = sum(1 for a, b in zip(tokens, tokens[1:], strict=False) if a == b)
    return len(tokens) + repeats


def frames_for_seconds(seconds: float, cfg: FeatureConfig) -> int:
    samples = int(seconds * cfg.sample_rate)
    feats = 0 if samples < cfg.window_size else 1 + (samples - cfg.window_size) // cfg.window_shift
    return int(output_lengths(torch.tensor(feats)))


def flush_padding(num_samples: int, cfg: FeatureConfig) -> int:
    """Zeros ``Stream.finish`` appends to complete the last analysis window; training does the same."""
    frames = 0 if num_samples < cfg.window_size else 1 + (num_samples - cfg.window_size) // cfg.window_shift
    pending = num_samples - frames * cfg.window_shift
    return cfg.window_size - pending if 0 < pending < cfg.window_size else 0


def load_utterances(
    specs: Sequence[str], vocab: Vocabulary, features: FeatureConfig, max_seconds: float | None = None,
    limit: int | None = None,
) -> tuple[list[TrainUtterance], Counter]:
    """Read manifests (``a.jsonl`` or ``a.jsonl:WEIGHT``), normalise text, skip what cannot train.

    ``limit`` keeps the first N usable utterances of each manifest.
    """
    items: list[TrainUtterance] = []
    skipped: Counter = Counter()
    for spec in specs:
        path, weight = parse_manifest_arg(spec)
        kept = missing = seen = 0
        first_missing = None
        unknown: Counter = Counter()
        for utt in read_manifest(path):
            if limit is not None and kept >= limit:
                break
            seen += 1
            if not utt.audio.exists():
                missing += 1
                first_missing = first_missing or utt.audio
                skipped["missing_audio"] += 1
                continue
            text = normalize_text(utt.text)
            if not text:
                skipped["empty_text"] += 1
                continue
            bad = vocab.unknown_chars(text)
            if bad:
                unknown.update(bad)
                skipped["unknown_chars"] += 1
                continue
            if max_seconds is not None and utt.duration > max_seconds:
                skipped["too_long_audio"] += 1
                continue
            tokens = tuple(vocab.encode(text))
            if ctc_min_frames(tokens) > frames_for_seconds(utt.duration, features):
                skipped["text_too_long"] += 1
                continue
            items.append(TrainUtterance(utt.audio, text, tokens, utt.duration, weight))
            kept += 1
        if unknown:
            shown = "".join(sorted(unknown, key=lambda c: -unknown[c])[:20])
            log.warning("%s: skipped utterances with characters outside the vocabulary: %r", path, shown)
        if missing > MAX_MISSING_FRACTION * seen:
            raise ManifestError(f"{path}: {missing} of {seen} audio files do not exist (the first expected at "
                                f"{first_missing}): are its paths relative to another folder?")
        if kept == 0:
            raise ManifestError(f"{path}: no usable utterances")
    return items, skipped


def describe_skips(skipped: Counter) -> str:
    if not skipped:
        return "none skipped"
    return ", ".join(f"{n} {SKIP_REASONS.get(k, k)}" for k, n in sorted(skipped.items()))


@dataclass
class Example:
    features: torch.Tensor  # (T, F)
    tokens: torch.Tensor  # (L,) int64
    seconds: float  # audio seconds after augmentation


@dataclass
class Skipped:
    reason: str
    path: Path


@dataclass
class Batch:
    features: torch.Tensor  # (B, T, F) zero-padded at the end
    feature_lengths: torch.Tensor  # (B,)
    targets: torch.Tensor  # (sum L,) concatenated labels, as ctc_loss takes them
    target_lengths: torch.Tensor  # (B,)
    seconds: float  # audio in this batch
    skipped: Counter = field(default_factory=Counter)

    @property
    def size(self) -> int:
        return int(self.feature_lengths.numel())


class SpeechDataset:
    """Map-style dataset for a DataLoader. A key is an index or ``(index, augmentation seed)``.

    With ``cache`` each process keeps the decoded audio it has loaded, as int16 (half of float32's
    memory; the files are 16-bit or lossy anyway), so Opus is decoded once per process and run,
    not once per epoch. A persistent loader worker therefore fills its cache in the first epoch.
    """

    def __init__(self, items: Sequence[TrainUtterance], features: FeatureConfig,
                 augment: AugmentConfig | None = None, cache: bool = False) -> None:
        self.items = list(items)
        self.extractor = FbankExtractor(features)
        self.augment = augment
        self.cache = cache
        self._audio: dict[int, np.ndarray | None] = {}
        self._rooms: list[np.ndarray] | None = None  # augment.reverb_rirs, read on first use

    def __len__(self) -> int:
        return len(self.items)

    def waveform(self, index: int) -> np.ndarray | None:
        """float32 samples, or None when the file cannot be read (remembered when caching)."""
        if index in self._audio:
            pcm = self._audio[index]
            return None if pcm is None else pcm.astype(np.float32) / PCM_SCALE
        try:
            wave = load_audio(self.items[index].audio, self.extractor.cfg.sample_rate)
        except (AudioDecodeError, OSError) as e:
            log.debug("skipping %s: %s", self.items[index].audio, e)
            wave = None
        if self.cache:
            self._audio[index] = None if wave is None else to_pcm16(wave)
        return wave

    def rooms(self) -> list[np.ndarray] | None:
        """The measured impulse responses of ``augment.reverb_rirs``, read once per process."""
        if self.augment is None or not self.augment.reverb_rirs:
            return None
        if self._rooms is None:
            self._rooms = load_rirs(self.augment.reverb_rirs, self.extractor.cfg.sample_rate)
        return self._rooms

    def talkers(self, rng: np.random.Generator, count: int) -> list[np.ndarray]:
        """``count`` other training utterances, drawn by ``rng`` (babble); unreadable ones are left out."""
        picks = rng.integers(0, len(self.items), size=count)
        return [w for w in (self.waveform(int(i)) for i in picks) if w is not None]

    def __getitem__(self, key: int | tuple[int, int]) -> Example | Skipped:
        index, seed = (key, None) if isinstance(key, int) else key
        item = self.items[index]
        wave = self.waveform(index)
        if wave is None or wave.size == 0:
            return Skipped("unreadable_audio", item.audio)
        rng = np.random.default_rng(seed) if seed is not None and self.augment else None
        warp = 1.0
        if rng is not None:
            wave = augment_waveform(wave, self.augment, rng, self.extractor.cfg.sample_rate, self.talkers,
                                    self.rooms())
            warp = vtlp_factor(self.augment, rng)
        seconds = wave.size / self.extractor.cfg.sample_rate
        pad = flush_padding(wave.size, self.extractor.cfg)
        wave = np.concatenate([wave, np.zeros(pad, np.float32)]) if pad else wave
        feats = self.extractor(torch.from_numpy(np.ascontiguousarray(wave, dtype=np.float32)), warp)
        if rng is not None:
            feats = spec_augment(feats, self.augment, rng)
        if ctc_min_frames(item.tokens) > int(output_lengths(torch.tensor(feats.shape[0]))):
            return Skipped("text_too_long", item.audio)
        return Example(feats, torch.tensor(item.tokens, dtype=torch.long), seconds)


def collate(examples: Sequence[Example | Skipped]) -> Batch:
    good = [e for e in examples if isinstance(e, Example)]
    skipped = Counter(e.reason for e in examples if isinstance(e, Skipped))
    n_mels = good[0].features.shape[1] if good else 0
    lengths = torch.tensor([e.features.shape[0] for e in good], dtype=torch.long)
    feats = torch.zeros(len(good), int(lengths.max()) if good else 0, n_mels)
    for i, e in enumerate(good):
        feats[i, : e.features.shape[0]] = e.features
    return Batch(
        features=feats,
        feature_lengths=lengths,
        targets=torch.cat([e.tokens for e in good]) if good else torch.zeros(0, dtype=torch.long),
        target_lengths=torch.tensor([e.tokens.numel() for e in good], dtype=torch.long),
        seconds=sum(e.seconds for e in good),
        skipped=skipped,
    )


def feature_stats(dataset: SpeechDataset, count: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-bin mean and std of un-augmented features over ``count`` utterances drawn by ``seed``.

    A sample is enough: the statistics of a few hundred utterances move by well under 1% with
    more, and computing them over tens of hours would cost minutes of the training budget.
    """
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(dataset))[: max(1, count)]
    total, total_sq, frames = None, None, 0
    for i in order.tolist():
        ex = dataset[int(i)]
        if isinstance(ex, Skipped):
            continue
        f = ex.features.double()
        total = f.sum(0) if total is None else total + f.sum(0)
        total_sq = (f * f).sum(0) if total_sq is None else total_sq + (f * f).sum(0)
        frames += f.shape[0]
    if frames < 2 or total is None or total_sq is None:
        raise ValueError("no readable training audio to compute feature statistics from")
    mean = total / frames
    var = (total_sq / frames - mean * mean).clamp_min(1e-6)
    return mean.float(), var.sqrt().float()
