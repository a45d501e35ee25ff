"""New voices from existing synthetic speech: pitch and formant warps with the WORLD vocoder (issue 11).

A TTS engine has few voices (hibari one, piper one); real speakers differ in pitch and vocal-tract
length. WORLD (PyPI ``pyworld``) splits speech into its pitch contour, spectral envelope and
aperiodicity; scaling the contour moves the pitch, stretching the envelope's frequency axis moves the
formants (``formant`` > 1: a shorter vocal tract, as of a child or a smaller adult). Each
(source voice, warp) pair is a voice of its own in the corpus, named ``SPEAKER@pPITCHfFORMANT``.

Warping costs about 4x real time on one core, so ``warp_corpus`` warps a seeded sample of a corpus
per warp setting rather than all of it. Like the synthesis tool it is resumable: an output's path is
a function of its source and warp, so a rerun skips what is on disk and rewrites the manifest
atomically as it goes.
"""

from __future__ import annotations

import logging
import os
import random
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .manifest import read_manifest, write_manifest
from .synth import existing_rows

log = logging.getLogger(__name__)

FRAME_PERIOD_MS = 5.0  # WORLD's default analysis hop
# Warps that stay intelligible (checked with Whisper tiny.en at the corners, issue 11): pitch x0.7-1.4,
# formants x0.88-1.12. Low pitch goes with long tracts and high with short ones, as in people, plus
# a few crossings.
DEFAULT_WARPS = ("0.70:0.88", "0.78:0.92", "0.85:0.95", "0.90:1.04", "1.12:1.06", "1.25:1.10", "1.40:1.12",
                 "0.80:1.06", "1.20:0.94", "1.00:0.90", "1.00:1.10", "0.92:0.97")


@dataclass(frozen=True)
class Warp:
    pitch: float  # factor on the fundamental frequency
    formant: float  # factor on the spectral envelope's frequency axis

    def __post_init__(self) -> None:
        if not (0.5 <= self.pitch <= 2.0 and 0.75 <= self.formant <= 1.33):
            raise ValueError(f"warp {self.name} is outside pitch 0.5-2.0 / formant 0.75-1.33: it would not sound human")

    @classmethod
    def parse(cls, text: str) -> Warp:
        try:
            pitch, formant = (float(v) for v in text.split(":"))
        except ValueError:
            raise ValueError(f"a warp is PITCH:FORMANT such as 0.70:0.88, got {text!r}") from None
        return cls(pitch, formant)

    @property
    def name(self) -> str:
        return f"p{self.pitch:.2f}f{self.formant:.2f}"


def _pyworld():
    try:
        import pyworld
    except ImportError as e:  # pkg_resources (setuptools < 80) is imported by pyworld itself
        raise ImportError("pitch/formant warps need the WORLD vocoder: pip install pyworld 'setuptools<80'") from e
    return pyworld


def warp_envelope(envelope: np.ndarray, factor: float) -> np.ndarray:
    """(frames, bins) spectral envelope -> the same with its frequency axis stretched by ``factor``:
    what sat at bin k moves to bin k * factor (beyond the top, the top bin's value is held)."""
    bins = envelope.shape[1]
    source = np.arange(bins) / factor  # where each output bin reads from
    lo = np.clip(np.floor(source).astype(int), 0, bins - 1)
    hi = np.clip(lo + 1, 0, bins - 1)
    frac = np.clip(source - lo, 0.0, 1.0)
    return envelope[:, lo] * (1 - frac) + envelope[:, hi] * frac


def world_warp(wave: np.ndarray, sample_rate: int, warp: Warp) -> np.ndarray:
    """float32 mono speech -> the same words with pitch and formants moved; length and level kept."""
    pw = _pyworld()
    x = np.ascontiguousarray(wave, dtype=np.float64)
    f0, times = pw.dio(x, sample_rate, frame_period=FRAME_PERIOD_MS)
    f0 = pw.stonemask(x, f0, times, sample_rate)  # refines DIO's estimate; far cheaper than Harvest
    envelope = pw.cheaptrick(x, f0, times, sample_rate)
    aperiodicity = pw.d4c(x, f0, times, sample_rate)
    if warp.formant != 1.0:
        envelope = warp_envelope(envelope, warp.formant)
        aperiodicity = warp_envelope(aperiodicity, warp.formant)
    y = pw.synthesize(f0 * warp.pitch, np.ascontiguousarray(envelope), np.ascontiguousarray(aperiodicity),
                      sample_rate, FRAME_PERIOD_MS)
    y = np.resize(y, x.size) if y.size < x.size else y[: x.size]
    power_in, power_out = float(np.mean(x**2)), float(np.mean(y**2))
    if power_out > 0.0:
        y *= np.sqrt(power_in / power_out)
    peak = float(np.max(np.abs(y))) if y.size else 0.0
    if peak > 0.999:  # a raised formant can push peaks past full scale
        y *= 0.999 / peak
    return y.astype(np.float32)


@dataclass(frozen=True)
class WarpJob:
    source: Path  # the source utterance's audio
    row: dict  # the output manifest row (audio relative to the output folder, duration filled in)


def plan_warps(source_manifest: Path, warps: Sequence[Warp], hours_per_warp: float, seed: int) -> list[WarpJob]:
    """For each warp, a seeded random sample of the source utterances adding up to ``hours_per_warp``.

    Each warp draws its own sample (seeded by ``seed`` and the warp's name), so growing the hours or
    adding warps keeps every job planned before.
    """
    utts = list(read_manifest(source_manifest))
    jobs: list[WarpJob] = []
    for warp in warps:
        order = list(range(len(utts)))
        random.Random(f"{seed}:{warp.name}").shuffle(order)
        seconds = 0.0
        for i in order:
            if seconds >= hours_per_warp * 3600:
                break
            utt = utts[i]
            speaker = str(utt.extra.get("speaker", "unknown"))
            voice = f"{speaker}@{warp.name}"
            folder = voice.replace(":", "_").replace("+", "_").replace("@", "_")
            row = {"audio": f"audio/{folder}/{utt.audio.stem}.flac", "text": utt.text, "duration": utt.duration,
                   **utt.extra, "speaker": voice, "warp_pitch": warp.pitch, "warp_formant": warp.formant,
                   "warped_from": str(utt.audio)}
            jobs.append(WarpJob(utt.audio, row))
            seconds += utt.duration
    return jobs


def _render(job: WarpJob, out_dir: Path, sample_rate: int = 16000) -> dict:
    import av

    from model.audio import load_audio

    wave = load_audio(job.source, sample_rate)
    row = job.row
    warped = world_warp(wave, sample_rate, Warp(row["warp_pitch"], row["warp_formant"]))
    target = out_dir / row["audio"]
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, partial = tempfile.mkstemp(dir=target.parent, suffix=".flac")
    os.close(fd)
    try:
        with av.open(partial, "w", format="flac") as out:
            stream = out.add_stream("flac", rate=sample_rate, layout="mono")
            pcm = np.clip(np.round(warped * 32767), -32768, 32767).astype(np.int16).reshape(1, -1)
            frame = av.AudioFrame.from_ndarray(pcm, format="s16", layout="mono")
            frame.sample_rate = sample_rate
            for packet in [*stream.encode(frame), *stream.encode(None)]:
                out.mux(packet)
        os.replace(partial, target)  # whole files only: a killed run never leaves half a FLAC in place
    finally:
        if os.path.exists(partial):
            os.unlink(partial)
    return {**row, "duration": round(warped.size / sample_rate, 3)}


def _render_or_error(args: tuple[WarpJob, Path]) -> tuple[dict | None, str | None]:
    job, out_dir = args
    try:
        return _render(job, out_dir), None
    except Exception as e:  # one bad source file must not end a run of hours
        return None, f"{job.source}: {e}"


def warp_corpus(jobs: Sequence[WarpJob], out_dir: Path, workers: int = 1, flush_every: int = 200) -> tuple[int, int]:
    """Make every job not on disk; keep ``out_dir/train.jsonl`` current. Returns (made, failed)."""
    manifest = out_dir / "train.jsonl"
    rows = existing_rows(manifest, out_dir)
    todo = [j for j in jobs if j.row["audio"] not in rows]
    log.info("%s: %d warped utterances on disk, %d to make", manifest, len(rows), len(todo))
    made = failed = 0

    def flush() -> None:
        write_manifest(manifest, sorted(rows.values(), key=lambda r: r["audio"]))

    pool = None
    try:
        if workers > 1 and len(todo) > 1:
            import multiprocessing

            pool = multiprocessing.get_context("spawn").Pool(workers)
            results = pool.imap_unordered(_render_or_error, [(j, out_dir) for j in todo], chunksize=4)
        else:
            results = map(_render_or_error, [(j, out_dir) for j in todo])
        for row, error in results:
            if row is None:
                failed += 1
                log.warning("warp failed: %s", error)
                continue
            rows[row["audio"]] = row
            made += 1
            if made % flush_every == 0:
                flush()
                hours = sum(r["duration"] for r in rows.values()) / 3600
                log.info("%s: %d utterances, %.2f h (%d made, %d failed this run)", manifest, len(rows), hours,
                         made, failed)
    finally:
        if pool is not None:
            pool.terminate()
            pool.join()
        flush()
    return made, failed
