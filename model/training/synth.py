"""Synthetic training speech: plan a corpus and make it with the offline TTS engines installed here.

Each utterance gets a random voice, rate and pitch; audio is stored as 16 kHz mono FLAC beside a JSONL
manifest (the format of ``manifest.py``). What is said comes from ``synth_prompts``; the voices and the
rendering of one utterance from ``synth_voices``.

A run is resumable: an utterance's file name is a hash of what it says and how, and each utterance is
planned from its own seeded random stream, so a rerun (even with larger counts) plans the same
utterances again, skips those already on disk and rewrites the manifest atomically as it goes.
"""

from __future__ import annotations

import logging
import os
import random
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from ..tokens import Vocabulary
from .importers import audio_duration
from .manifest import ManifestError, read_manifest, write_manifest
from .synth_prompts import GENERATED_KINDS, Prompt, TextStats, common_words, generated_prompt, read_sentences
from .synth_voices import Job, SynthError, Voice, discover_voices, manifest_row, render, voice_families

log = logging.getLogger(__name__)


# --------------------------------------------------------------------------------------------------
# Planning and running a corpus


@dataclass(frozen=True)
class SynthConfig:
    out_dir: Path
    # (sentence file, how many sentences); files may be gzip'd, one sentence a line
    texts: tuple[tuple[Path, int], ...] = ()
    # (generated kind, how many utterances): see GENERATED_KINDS
    generated: tuple[tuple[str, int], ...] = ()
    valid_sentences: int = 0  # held out from each text file, before training sentences are taken
    max_words: int = 12  # the real test sets are words, digit strings and short sentences
    word_list_size: int = 4000  # single words are drawn from this many most frequent words of the texts
    engines: tuple[str, ...] = ()  # empty: DEFAULT_ENGINES (the Debian ones), those installed
    rate_range: tuple[float, float] = (0.8, 1.25)  # speaking-rate factor, drawn uniformly
    pitch_range: tuple[float, float] = (-3.0, 3.0)  # semitones, drawn uniformly
    workers: int = 2
    max_hours: float | None = None  # stop once the training manifest holds this much audio
    flush_every: int = 500  # rewrite the manifest after this many new utterances
    seed: int = 1

    def __post_init__(self) -> None:
        if self.workers < 1:
            raise ValueError("workers must be at least 1")
        if self.max_words < 1:
            raise ValueError("max_words must be at least 1")
        if self.rate_range[0] <= 0 or self.rate_range[0] > self.rate_range[1]:
            raise ValueError(f"bad rate range {self.rate_range}")
        if self.pitch_range[0] > self.pitch_range[1]:
            raise ValueError(f"bad pitch range {self.pitch_range}")
        for kind, n in self.generated:
            if kind not in GENERATED_KINDS:
                raise ValueError(f"unknown generated prompt kind {kind!r}; choose from {', '.join(GENERATED_KINDS)}")
            if n < 0:
                raise ValueError(f"negative count for {kind}")
        if any(n < 0 for _, n in self.texts) or self.valid_sentences < 0:
            raise ValueError("counts must not be negative")


def assign_voice(prompt: Prompt, slot: str, families: dict[str, list[Voice]], config: SynthConfig) -> Job:
    """A voice, rate and pitch for one prompt, drawn from a stream of its own (``slot``) for resumability.

    Families are drawn evenly, so espeak-ng's hundreds of variants do not crowd out the few flite and
    festival voices.
    """
    rng = random.Random(f"{config.seed}/voice/{slot}")
    family = families[rng.choice(sorted(families))]
    voice = rng.choice(family)
    rate = rng.uniform(*config.rate_range)
    pitch = rng.uniform(*config.pitch_range)
    return Job(prompt.text, prompt.speak, prompt.kind, voice, round(rate, 3), round(pitch, 2))


@dataclass(frozen=True)
class Plan:
    train: tuple[Job, ...]
    valid: tuple[Job, ...]
    text_stats: TextStats


def plan_corpus(config: SynthConfig, voices: Sequence[Voice], vocab: Vocabulary | None = None) -> Plan:
    vocab = vocab or Vocabulary()
    families = voice_families(voices)
    stats = TextStats()
    seen: set[str] = set()
    word_counts: Counter = Counter()
    valid_prompts: list[Prompt] = []
    train_prompts: list[tuple[str, Prompt]] = []
    for path, count in config.texts:
        name = Path(path).name.split(".")[0]
        both = read_sentences(Path(path), config.valid_sentences + count, config.max_words, vocab, stats, seen,
                              word_counts)
        valid_prompts += [Prompt(t, t, "sentence") for t in both[: config.valid_sentences]]
        train_prompts += [(f"{name}/{i}", Prompt(t, t, "sentence"))
                          for i, t in enumerate(both[config.valid_sentences:])]
    words = common_words(word_counts, vocab, config.word_list_size)
    for kind, count in config.generated:
        for i in range(count):
            prompt = generated_prompt(kind, i, config.seed, words)
            if prompt.text and not vocab.unknown_chars(prompt.text):
                train_prompts.append((f"{kind}/{i}", prompt))
    train = [assign_voice(p, slot, families, config) for slot, p in train_prompts]
    valid = [assign_voice(p, f"valid/{i}", families, config) for i, p in enumerate(valid_prompts)]
    # Shuffled so that any prefix, like the manifest of a run still going, is a balanced mix.
    random.Random(config.seed).shuffle(train)
    return Plan(tuple(train), tuple(valid), stats)


@dataclass
class RunReport:
    """What a run made: per manifest, hours per voice, and what it could not make."""

    manifest: Path
    utterances: int = 0
    seconds: float = 0.0
    made: int = 0  # new utterances this run
    skipped: int = 0  # already on disk from an earlier run
    failed: int = 0
    failures: list[str] = field(default_factory=list)
    seconds_per_voice: dict[str, float] = field(default_factory=dict)
    seconds_per_family: dict[str, float] = field(default_factory=dict)
    seconds_per_kind: dict[str, float] = field(default_factory=dict)

    @property
    def hours(self) -> float:
        return self.seconds / 3600


def existing_rows(manifest: Path, out_dir: Path) -> dict[str, dict]:
    """Rows of an earlier run's manifest whose audio is still on disk, by audio path."""
    rows: dict[str, dict] = {}
    if not manifest.exists():
        return rows
    try:
        for utt in read_manifest(manifest):
            rel = os.path.relpath(utt.audio, out_dir)
            if utt.audio.exists():
                rows[rel] = {"audio": rel, "text": utt.text, "duration": utt.duration, **utt.extra}
    except ManifestError as e:
        # A manifest is only ever replaced whole, so this is someone else's file; do not overwrite it.
        raise SynthError(f"{manifest} exists and is not a manifest: {e}") from e
    return rows


def _render_or_error(args: tuple[Job, Path]) -> tuple[Job, dict | None, str | None]:
    job, out_dir = args
    try:
        return job, render(job, out_dir), None
    except SynthError as e:
        return job, None, str(e)


def synthesize(jobs: Sequence[Job], out_dir: Path, manifest_name: str, config: SynthConfig,
               progress: bool = True, stop_at_hours: float | None = None) -> RunReport:
    """Make every job not already on disk, in a worker pool; keep ``out_dir/manifest_name`` current."""
    out_dir.mkdir(parents=True, exist_ok=True)
    manifest = out_dir / manifest_name
    rows = existing_rows(manifest, out_dir)
    report = RunReport(manifest)
    todo: list[Job] = []
    for job in jobs:
        if job.audio in rows:
            report.skipped += 1
        elif (out_dir / job.audio).exists():
            # Made by a run that was stopped before it rewrote the manifest.
            rows[job.audio] = manifest_row(job, round(audio_duration(out_dir / job.audio), 3))
            report.skipped += 1
        else:
            todo.append(job)
    seconds = sum(r["duration"] for r in rows.values())
    log.info("%s: %d utterances (%.2f h) already made, %d to make", manifest, len(rows), seconds / 3600, len(todo))

    def flush() -> None:
        write_manifest(manifest, sorted(rows.values(), key=lambda r: r["audio"]))

    if stop_at_hours is not None and seconds >= stop_at_hours * 3600:
        todo = []
    bar = _progress(len(todo), manifest_name, progress)
    since_flush = 0
    pool = None
    try:
        if config.workers > 1 and len(todo) > 1:
            import multiprocessing

            pool = multiprocessing.get_context("spawn").Pool(config.workers)
            results = pool.imap_unordered(_render_or_error, [(j, out_dir) for j in todo], chunksize=4)
        else:
            results = map(_render_or_error, [(j, out_dir) for j in todo])
        for job, row, error in results:
            bar.update(1)
            if row is None:
                report.failed += 1
                if len(report.failures) < 20:
                    report.failures.append(f"{job.voice.id} {job.text!r}: {error}")
                log.debug("failed: %s %r: %s", job.voice.id, job.text, error)
                continue
            rows[row["audio"]] = row
            report.made += 1
            seconds += row["duration"]
            since_flush += 1
            bar.set_postfix(hours=f"{seconds / 3600:.2f}", failed=report.failed, refresh=False)
            if since_flush >= config.flush_every:
                flush()
                since_flush = 0
                log.info("%s: %d utterances, %.2f h (%d made, %d failed this run)",
                         manifest, len(rows), seconds / 3600, report.made, report.failed)
            if stop_at_hours is not None and seconds >= stop_at_hours * 3600:
                log.info("reached %.2f h: stopping", seconds / 3600)
                break
    finally:
        if pool is not None:
            pool.terminate()
            pool.join()
        bar.close()
        flush()
    _summarise(report, rows.values())
    return report


def summarise_manifest(manifest: Path) -> RunReport:
    """Hours per voice, family and kind of a corpus manifest, also while a run is still adding to it."""
    report = RunReport(Path(manifest))
    rows = ({"duration": u.duration, **u.extra} for u in read_manifest(manifest))
    _summarise(report, rows)
    return report


def _summarise(report: RunReport, rows: Iterable[dict]) -> None:
    per_voice: Counter = Counter()
    per_family: Counter = Counter()
    per_kind: Counter = Counter()
    for r in rows:
        voice = r.get("speaker", "?")
        per_voice[voice] += r["duration"]
        engine, _, name = voice.partition(":")
        per_family[f"{engine}:{name.split('+')[0]}"] += r["duration"]
        per_kind[r.get("kind", "?")] += r["duration"]
        report.utterances += 1
        report.seconds += r["duration"]
    report.seconds_per_voice = dict(sorted(per_voice.items()))
    report.seconds_per_family = dict(sorted(per_family.items()))
    report.seconds_per_kind = dict(sorted(per_kind.items()))


def _progress(total: int, desc: str, enabled: bool):
    try:
        from tqdm import tqdm
    except ImportError as e:
        raise ImportError("the synthetic-corpus tool shows progress with tqdm: pip install 'edgescribe[train]'") from e
    return tqdm(total=total, desc=desc, unit="utt", disable=not enabled, smoothing=0.05)


@dataclass(frozen=True)
class CorpusResult:
    voices: tuple[Voice, ...]
    text_stats: TextStats
    train: RunReport
    valid: RunReport | None


def build_corpus(config: SynthConfig, progress: bool = True) -> CorpusResult:
    """Plan and make ``train.jsonl`` (and ``valid.jsonl`` if sentences are held out) in ``config.out_dir``."""
    voices = discover_voices(config.engines or None)
    for family, members in voice_families(voices).items():
        log.info("voice family %s: %d voice(s)", family, len(members))
    plan = plan_corpus(config, voices)
    stats = plan.text_stats
    if stats.unknown_chars:
        log.warning("skipped %d sentences with characters outside the vocabulary, e.g. %s",
                    stats.unknown_chars, "; ".join(stats.examples))
    log.info("planned %d training and %d validation utterances", len(plan.train), len(plan.valid))
    valid = None
    if plan.valid:
        valid = synthesize(plan.valid, config.out_dir, "valid.jsonl", config, progress)
    train = synthesize(plan.train, config.out_dir, "train.jsonl", config, progress, config.max_hours)
    write_voice_table(config.out_dir / "hours_per_voice.tsv", train)
    return CorpusResult(tuple(voices), stats, train, valid)


def write_voice_table(path: Path, report: RunReport) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    with tmp.open("w", encoding="utf-8") as f:
        f.write("voice\thours\n")
        for voice, seconds in report.seconds_per_voice.items():
            f.write(f"{voice}\t{seconds / 3600:.4f}\n")
    os.replace(tmp, path)
