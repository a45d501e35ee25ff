"""What synthetic utterances say: sentences read from text files, and generated digits, words, letters and commands."""

from __future__ import annotations

import gzip
import logging
import random
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from ..tokens import Vocabulary, normalize_text

log = logging.getLogger(__name__)


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
