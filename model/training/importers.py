"""Importers: common corpus layouts -> JSONL manifests (``manifest.py``'s format).

Supported: a LibriSpeech folder (``*.trans.txt`` beside ``.flac``), a Common Voice release TSV
(``train.tsv``, ``validated.tsv`` ... beside ``clips/``), a Kaldi data dir (``text`` and ``wav.scp``,
optionally ``utt2spk``) and a folder of audio files with same-named ``.txt`` transcripts.

Transcripts are written as the source has them, like ``../shared/data``: normalisation belongs to
training and scoring. Bad data never stops an import: missing or unreadable audio and empty
transcripts are skipped and counted, and transcripts that training would skip (characters outside the
vocabulary after normalisation) are counted so that the user hears of them now.
"""

from __future__ import annotations

import csv
import itertools
import logging
import os
import shlex
import subprocess
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from ..audio import SAMPLE_RATE, AudioDecodeError, load_audio
from ..tokens import Vocabulary, normalize_text
from .manifest import write_manifest

log = logging.getLogger(__name__)

AUDIO_SUFFIXES = (".wav", ".flac", ".mp3", ".ogg", ".opus", ".m4a", ".webm", ".sph")


class SourceLayoutError(ValueError):
    """The source is not the layout the importer expects (not a bad utterance: those are skipped)."""


@dataclass(frozen=True)
class Candidate:
    """One utterance found in a source, before its audio is checked."""

    audio: Path
    text: str
    extra: dict = field(default_factory=dict, compare=False)
    duration: float | None = None  # when the source states it (Common Voice's clip_durations.tsv)
    problem: str | None = None  # why it cannot be used, found while listing the source; skipped and counted


@dataclass
class ImportReport:
    manifest: Path
    utterances: int = 0
    seconds: float = 0.0
    skipped: Counter = field(default_factory=Counter)  # reason -> count
    examples: list[str] = field(default_factory=list)  # a few skipped items, to show the user
    outside_vocabulary: int = 0  # kept, but training will skip them

    @property
    def hours(self) -> float:
        return self.seconds / 3600

    def skip(self, reason: str, what: object) -> None:
        self.skipped[reason] += 1
        if len(self.examples) < 10:
            self.examples.append(f"{reason}: {what}")


def audio_duration(path: Path) -> float:
    """Seconds of audio in ``path``, from the container's header when it states it, else by decoding."""
    import av  # imported here: only reading audio needs FFmpeg's libraries

    try:
        with av.open(str(path)) as c:
            if not c.streams.audio:
                raise AudioDecodeError("the file has no audio stream")
            s = c.streams.audio[0]
            if s.duration and s.time_base:
                return float(s.duration * s.time_base)
            if c.duration:
                return c.duration / av.time_base
    except (av.FFmpegError, UnicodeDecodeError) as e:
        raise AudioDecodeError(f"not a decodable audio file: {e}") from e
    except FileNotFoundError as e:
        raise AudioDecodeError(f"no such file: {path}") from e
    # Headers without a duration (raw WAV streams from pipes, some Ogg files): decode to count.
    return load_audio(path).size / SAMPLE_RATE


def write_import(candidates: Iterable[Candidate], manifest: Path, vocab: Vocabulary | None = None) -> ImportReport:
    """Check each candidate's text and audio; write the good ones to ``manifest`` (atomically)."""
    vocab = vocab or Vocabulary()
    manifest = Path(manifest)
    base = manifest.parent.resolve()
    report = ImportReport(manifest)
    # Listing a source raises on a wrong layout at its first item: find out before writing anything.
    candidates = iter(candidates)
    first = next(candidates, None)
    if first is None:
        raise SourceLayoutError("the source holds no utterances")

    def rows() -> Iterator[dict]:
        for c in itertools.chain([first], candidates):
            if c.problem:
                report.skip(c.problem, c.audio)
                continue
            text = " ".join(c.text.split())
            if not normalize_text(text):
                report.skip("empty transcript", c.audio)
                continue
            try:
                duration = c.duration if c.duration is not None else audio_duration(c.audio)
            except AudioDecodeError as e:
                report.skip("unreadable audio", f"{c.audio} ({e})")
                continue
            if duration <= 0:
                report.skip("empty audio", c.audio)
                continue
            if vocab.unknown_chars(normalize_text(text)):
                report.outside_vocabulary += 1
            report.utterances += 1
            report.seconds += duration
            yield {"audio": os.path.relpath(c.audio.resolve(), base), "text": text, "duration": round(duration, 3),
                   **c.extra}

    write_manifest(manifest, rows())
    for reason, n in report.skipped.items():
        log.warning("%s: skipped %d utterances: %s", manifest, n, reason)
    if report.outside_vocabulary:
        log.warning("%s: %d transcripts have characters outside the vocabulary; training will skip them",
                    manifest, report.outside_vocabulary)
    return report


# --------------------------------------------------------------------------------------------------
# LibriSpeech: SPEAKER/CHAPTER/SPEAKER-CHAPTER.trans.txt, lines "UTTID TEXT", audio UTTID.flac


def librispeech(root: Path) -> Iterator[Candidate]:
    root = Path(root)
    transcripts = sorted(root.rglob("*.trans.txt"))
    if not transcripts:
        raise SourceLayoutError(f"{root} holds no LibriSpeech *.trans.txt files")
    for trans in transcripts:
        for line in trans.read_text(encoding="utf-8").splitlines():
            utt, _, text = line.strip().partition(" ")
            if not utt:
                continue
            audio = trans.parent / f"{utt}.flac"
            speaker, chapter = (utt.split("-") + ["", ""])[:2]
            yield Candidate(audio, text, {"speaker": speaker, "chapter": chapter})


# --------------------------------------------------------------------------------------------------
# Common Voice: a release TSV (client_id, path, sentence, ...) with the clips in ../clips/


def _clip_durations(folder: Path) -> dict[str, float]:
    # Newer releases ship clip_durations.tsv (clip, duration[ms]); probing 100k MP3s is slow.
    path = folder / "clip_durations.tsv"
    if not path.exists():
        return {}
    out: dict[str, float] = {}
    with path.open(encoding="utf-8", newline="") as f:
        for row in csv.reader(f, delimiter="\t"):
            if len(row) >= 2 and row[1].strip().isdigit():
                out[row[0]] = int(row[1]) / 1000
    return out


def common_voice(tsv: Path, clips: Path | None = None) -> Iterator[Candidate]:
    tsv = Path(tsv)
    clips = Path(clips) if clips else tsv.parent / "clips"
    durations = _clip_durations(tsv.parent)
    try:
        f = tsv.open(encoding="utf-8", newline="")
    except OSError as e:
        raise SourceLayoutError(f"cannot read {tsv}: {e.strerror or e}") from e
    with f:
        # Sentences hold quotes; QUOTE_NONE keeps them as text instead of csv quoting.
        reader = csv.DictReader(f, delimiter="\t", quoting=csv.QUOTE_NONE)
        if not reader.fieldnames or not {"path", "sentence"} <= set(reader.fieldnames):
            raise SourceLayoutError(f"{tsv} is not a Common Voice TSV: it needs 'path' and 'sentence' columns")
        for row in reader:
            extra = {"speaker": row.get("client_id", "")}
            for key in ("gender", "age", "accents", "locale"):
                if row.get(key):
                    extra[key] = row[key]
            yield Candidate(clips / row["path"], row.get("sentence") or "", extra, durations.get(row["path"]))


# --------------------------------------------------------------------------------------------------
# Kaldi data dir: text ("UTTID TEXT"), wav.scp ("UTTID PATH" or "UTTID COMMAND |"), utt2spk


def _kaldi_table(path: Path) -> dict[str, str]:
    table: dict[str, str] = {}
    with path.open(encoding="utf-8") as f:
        for line in f:
            key, _, value = line.strip().partition(" ")
            if key:
                table[key] = value.strip()
    return table


def kaldi(data_dir: Path, extract_dir: Path | None = None) -> Iterator[Candidate]:
    """Utterances of a Kaldi data dir. Piped ``wav.scp`` entries are run and saved as FLAC in ``extract_dir``."""
    data_dir = Path(data_dir)
    if (data_dir / "segments").exists():
        raise SourceLayoutError(f"{data_dir} has a segments file: cut the recordings first "
                           "(Kaldi's extract-segments), then import the resulting data dir")
    for name in ("text", "wav.scp"):
        if not (data_dir / name).exists():
            raise SourceLayoutError(f"{data_dir} is not a Kaldi data dir: no {name}")
    texts = _kaldi_table(data_dir / "text")
    wavs = _kaldi_table(data_dir / "wav.scp")
    speakers = _kaldi_table(data_dir / "utt2spk") if (data_dir / "utt2spk").exists() else {}
    piped = next((e for e in wavs.values() if e.endswith("|")), None)
    if piped and extract_dir is None:
        raise SourceLayoutError(f"{data_dir}/wav.scp runs commands ({piped[:60]}): give a folder to extract "
                                "their audio into")
    for utt, text in texts.items():
        entry = wavs.get(utt)
        if entry is None:
            yield Candidate(data_dir / "wav.scp", text, problem=f"{utt} is not in wav.scp")
            continue
        if entry.endswith("|"):
            audio, problem = _extract(utt, entry[:-1].strip(), Path(extract_dir))
            if problem:
                yield Candidate(data_dir / "wav.scp", text, problem=problem)
                continue
        else:
            audio = Path(entry)
            if not audio.is_absolute():
                # Kaldi resolves relative paths from where its recipe ran: the folder above data/.
                audio = Path(os.path.normpath(data_dir.parent.parent / audio))
        extra = {"speaker": speakers[utt]} if utt in speakers else {}
        yield Candidate(audio, text, extra)


def _extract(utt: str, command: str, extract_dir: Path) -> tuple[Path, str | None]:
    """Run a ``wav.scp`` command (it writes WAV to stdout) and keep its audio as 16 kHz mono FLAC."""
    target = extract_dir / f"{utt}.flac"
    if target.exists():
        return target, None
    extract_dir.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(f".{target.name}.tmp.flac")
    # The command is the user's own data dir, run as Kaldi itself would run it: through a shell.
    pipeline = f"{command} | sox -t wav - -c 1 -b 16 -r {SAMPLE_RATE} {shlex.quote(str(partial))}"
    done = subprocess.run(pipeline, shell=True, capture_output=True, text=True)
    if done.returncode != 0 or not partial.exists():
        partial.unlink(missing_ok=True)
        return target, f"wav.scp command failed for {utt}: {done.stderr.strip()[-200:]}"
    os.replace(partial, target)
    return target, None


# --------------------------------------------------------------------------------------------------
# A folder of audio files, each with a same-named .txt transcript beside it


def folder(root: Path) -> Iterator[Candidate]:
    root = Path(root)
    if not root.is_dir():
        raise SourceLayoutError(f"{root} is not a folder")
    found = False
    for audio in sorted(p for p in root.rglob("*") if p.suffix.lower() in AUDIO_SUFFIXES and p.is_file()):
        found = True
        txt = audio.with_suffix(".txt")
        if not txt.exists():
            yield Candidate(audio, "", problem="no transcript")
            continue
        yield Candidate(audio, txt.read_text(encoding="utf-8").strip(), {"speaker": audio.parent.name})
    if not found:
        raise SourceLayoutError(f"{root} holds no audio files ({', '.join(AUDIO_SUFFIXES)})")
