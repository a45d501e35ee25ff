"""Transcript output formats: plain text, JSON, SubRip and WebVTT. Shared by the CLI and the service."""

from __future__ import annotations

import json
from collections.abc import Sequence

from .recognize import Segment
from .templates import Intent

FORMATS = ("text", "json", "srt", "vtt")


def _timestamp(seconds: float, sep: str) -> str:
    ms = max(0, round(seconds * 1000))
    h, rem = divmod(ms, 3_600_000)
    m, rem = divmod(rem, 60_000)
    s, ms = divmod(rem, 1000)
    return f"{h:02d}:{m:02d}:{s:02d}{sep}{ms:03d}"


def full_text(segments: Sequence[Segment]) -> str:
    return " ".join(s.text for s in segments if s.text)


def intent_json(intent: Intent | None) -> dict | None:
    """An intent as the API answers it: ``{"name", "slots": {slot: {"value", "text"}}, "confidence"}``
    (Home Assistant's slot names; ``text`` is what was said, "" for a slot the intent fixes)."""
    if intent is None:
        return None
    slots = {k: {"value": v.value, "text": v.text} for k, v in intent.slots.items()}
    return {"name": intent.name, "slots": slots, "confidence": intent.confidence}


def first_intent(segments: Sequence[Segment]) -> dict | None:
    """The first segment's intent that there is: an upload or utterance is usually one command."""
    return next((intent_json(s.intent) for s in segments if s.intent is not None), None)


def to_srt(segments: Sequence[Segment]) -> str:
    blocks = [
        f"{i}\n{_timestamp(s.start, ',')} --> {_timestamp(s.end, ',')}\n{s.text}\n"
        for i, s in enumerate(segments, start=1)
    ]
    return "\n".join(blocks)


def to_vtt(segments: Sequence[Segment]) -> str:
    blocks = [f"{_timestamp(s.start, '.')} --> {_timestamp(s.end, '.')}\n{s.text}\n" for s in segments]
    return "WEBVTT\n\n" + "\n".join(blocks)


def to_dict(segments: Sequence[Segment], duration: float) -> dict:
    return {
        "text": full_text(segments),
        "duration": round(duration, 3),
        "segments": [
            {"id": s.id, "start": s.start, "end": s.end, "text": s.text,
             "words": [{"word": w.word, "start": w.start, "end": w.end, "confidence": w.confidence}
                       for w in s.words]}
            for s in segments
        ],
    }


def render(segments: Sequence[Segment], fmt: str, duration: float) -> str:
    if fmt == "text":
        return full_text(segments)
    if fmt == "json":
        return json.dumps(to_dict(segments, duration))
    if fmt == "srt":
        return to_srt(segments)
    if fmt == "vtt":
        return to_vtt(segments)
    raise ValueError(f"unknown format {fmt!r}; choose one of {', '.join(FORMATS)}")
