"""POST /v1/audio/transcriptions, compatible with OpenAI's transcription API.

The multipart body is read here rather than by FastAPI's ``Form``/``File`` parameters so that its size
is bounded while it streams in (413 as soon as it passes ``max_upload_bytes``, before a byte more is
stored), and so that every bad field is a 400 saying what to send instead. The file part is spooled
by Starlette to an anonymous temporary file (memory up to 1 MiB, then disk): its name is never the
client's, and it is closed as soon as the answer is ready, whatever happens.

``stream=true`` answers OpenAI's server-sent events instead (``service/events.py``); the response then
holds the request's slot and its file until its last event.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse, PlainTextResponse
from starlette.datastructures import FormData, UploadFile
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import Message, Receive

from model.formats import first_intent, full_text, intent_json, to_srt, to_vtt

from ..deps import ApiKey, EngineDep, SettingsDep
from ..errors import BadField, IdleTimeout, UploadTooLarge
from ..events import TranscriptEvents
from ..recognizer import Transcription
from ..settings import Settings

router = APIRouter(dependencies=[ApiKey])

RESPONSE_FORMATS = ("json", "text", "srt", "vtt", "verbose_json")
# OpenAI's transcript events carry text only, so only the formats that are text alone can be streamed.
STREAM_FORMATS = ("json", "text")
BOOLEANS = {"true": True, "1": True, "false": False, "0": False, "": False}  # form fields are text
GRANULARITIES = ("segment", "word")
LANGUAGES = ("", "en")  # the model is English-only; "" means "not given"
MAX_FORM_FIELDS = 32  # model, language, prompt, response_format, temperature, granularities...: far below this

_FORM_SCHEMA = {
    "requestBody": {
        "required": True,
        "content": {"multipart/form-data": {"schema": {
            "type": "object",
            "required": ["file"],
            "properties": {
                "file": {"type": "string", "format": "binary", "description": "audio in any format FFmpeg decodes"},
                "model": {"type": "string", "description": "accepted for compatibility; the loaded model answers"},
                "language": {"type": "string", "enum": list(LANGUAGES)},
                "prompt": {"type": "string", "description": "its words are favoured while decoding (hotwords)"},
                "phrase_list": {"type": "array", "items": {"type": "string"},
                                "description": "restrict the transcript to these phrases (grammar mode; "
                                               "'[unk]' allows anything else); repeat the field per phrase"},
                "grammar": {"type": "string",
                            "description": "sentence templates in Home Assistant's YAML format (intents, lists, "
                                           "expansion_rules): the transcript is one of their sentences or nothing, "
                                           "and verbose_json adds its intent and slots"},
                "response_format": {"type": "string", "enum": list(RESPONSE_FORMATS), "default": "json"},
                "stream": {"type": "boolean", "default": False,
                           "description": "answer server-sent events as segments are decoded "
                                          "(transcript.text.delta, then transcript.text.done); "
                                          "response_format json or text only"},
                "temperature": {"type": "number", "description": "accepted and ignored (decoding is beam search)"},
                "timestamp_granularities[]": {"type": "array", "items": {"type": "string",
                                                                          "enum": list(GRANULARITIES)}},
            },
        }}},
    }
}


@dataclass(frozen=True)
class TranscriptionParams:
    file: UploadFile
    language: str
    prompt: str
    phrase_list: tuple[str, ...]
    grammar: str  # sentence templates (YAML), "" for none
    response_format: str
    granularities: frozenset[str]
    stream: bool

    @classmethod
    def from_form(cls, form: FormData) -> TranscriptionParams:
        file = form.get("file")
        if not isinstance(file, UploadFile):
            raise BadField("send the audio as a file part named 'file' (multipart/form-data)", "file")
        language = _text(form, "language").strip().lower()
        if language not in LANGUAGES:
            raise BadField(f"language {language!r} is not supported: send 'en' or leave it out", "language")
        response_format = _text(form, "response_format").strip() or "json"
        if response_format not in RESPONSE_FORMATS:
            raise BadField(f"response_format {response_format!r} is unknown: use one of "
                           f"{', '.join(RESPONSE_FORMATS)}", "response_format")
        temperature = _text(form, "temperature").strip()
        if temperature:
            try:
                float(temperature)
            except ValueError:
                raise BadField(f"temperature must be a number, got {temperature!r}", "temperature") from None
        granularities = [g for name in ("timestamp_granularities[]", "timestamp_granularities")
                         for g in _texts(form, name)]
        unknown = sorted(set(granularities) - set(GRANULARITIES))
        if unknown:
            raise BadField(f"timestamp_granularities {unknown} unknown: use 'segment' and/or 'word'",
                           "timestamp_granularities[]")
        phrases = tuple(_texts(form, "phrase_list") + _texts(form, "phrase_list[]"))
        grammar = _text(form, "grammar")
        if grammar.strip() and phrases:
            raise BadField("send either grammar (sentence templates) or phrase_list, not both", "grammar")
        stream = BOOLEANS.get(_text(form, "stream").strip().lower())
        if stream is None:
            raise BadField(f"stream must be true or false, got {_text(form, 'stream')!r}", "stream")
        if stream and response_format not in STREAM_FORMATS:
            raise BadField(f"stream=true answers transcript.text events, which carry text only: use response_format "
                           f"{' or '.join(STREAM_FORMATS)} with it, or leave stream out for {response_format}",
                           "stream")
        return cls(file, language, _text(form, "prompt"), phrases, grammar if grammar.strip() else "",
                   response_format, frozenset(granularities), stream)


def _texts(form: FormData, name: str) -> list[str]:
    values = form.getlist(name)
    for v in values:
        if not isinstance(v, str):
            raise BadField(f"'{name}' must be a text field, not a file", name)
    return values  # type: ignore[return-value]


def _text(form: FormData, name: str) -> str:
    values = _texts(form, name)
    return values[-1] if values else ""


def _limited(receive: Receive, settings: Settings) -> Receive:
    """``receive`` that raises ``UploadTooLarge`` once the body passes ``max_upload_bytes``, before storing more,
    and ``IdleTimeout`` when no data comes for ``idle_timeout`` seconds or, once that long has passed, the
    body has arrived at fewer than ``min_upload_rate`` bytes per second on average.

    Without these bounds a client that stops sending mid-body, or sends a byte now and then, holds its
    request slot for as long as it keeps the connection open: uvicorn has no timeout on reading a body.
    """
    max_bytes, idle_timeout, min_rate = settings.max_upload_bytes, settings.idle_timeout, settings.min_upload_rate
    seen = 0
    started = time.monotonic()

    async def limited() -> Message:
        nonlocal seen
        try:
            message = await asyncio.wait_for(receive(), timeout=idle_timeout)
        except asyncio.TimeoutError:
            raise IdleTimeout(f"no upload data received for {idle_timeout:g} s: send the file without pauses "
                              f"(the server's limit is EDGESCRIBE_IDLE_TIMEOUT)", "file") from None
        if message["type"] == "http.request":
            seen += len(message.get("body", b""))
            if seen > max_bytes:
                raise UploadTooLarge(f"the upload is larger than {max_bytes} bytes: send a shorter or more "
                                     f"compressed file (the server's limit is EDGESCRIBE_MAX_UPLOAD_BYTES)", "file")
            elapsed = time.monotonic() - started
            if min_rate and elapsed > idle_timeout and seen < min_rate * elapsed and message.get("more_body"):
                raise IdleTimeout(f"the upload is arriving at {seen / elapsed:.0f} bytes/s, under the floor of "
                                  f"{min_rate}: send it faster (the server's limit is EDGESCRIBE_MIN_UPLOAD_RATE)",
                                  "file")
        return message

    return limited


@contextlib.asynccontextmanager
async def read_form(request: Request, settings: Settings) -> AsyncIterator[FormData]:
    max_bytes = settings.max_upload_bytes
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > max_bytes:
        raise UploadTooLarge(f"the upload is {declared} bytes, more than the limit of {max_bytes}: send a shorter "
                             f"or more compressed file (the server's limit is EDGESCRIBE_MAX_UPLOAD_BYTES)", "file")
    if not request.headers.get("content-type", "").lower().startswith("multipart/form-data"):
        raise BadField("send the request as multipart/form-data with the audio in a part named 'file'", "file")
    try:
        form = await Request(request.scope, _limited(request.receive, settings)).form(
            max_files=1, max_fields=MAX_FORM_FIELDS)
    except StarletteHTTPException as e:  # Starlette's word for a malformed multipart body
        raise BadField(f"the multipart body is malformed: {e.detail}") from e
    try:
        yield form
    finally:
        await form.close()


async def _disconnected(receive: Receive) -> None:
    """Completes when the client hangs up (the body has been read, so nothing else can arrive)."""
    while (await receive())["type"] != "http.disconnect":
        pass


@router.post("/v1/audio/transcriptions", openapi_extra=_FORM_SCHEMA, response_model=None)
async def create_transcription(request: Request, engine: EngineDep, settings: SettingsDep) -> Response:
    async with contextlib.AsyncExitStack() as held:
        held.enter_context(engine.requests.hold())  # refuse (503) before reading a byte of the upload
        form = await held.enter_async_context(read_form(request, settings))
        params = TranscriptionParams.from_form(form)
        hotwords = engine.hotwords(params.prompt.split())
        grammar = await engine.templates(params.grammar) if params.grammar else engine.grammar(params.phrase_list)
        if params.stream:
            segments = engine.transcribe_segments(params.file.file, hotwords, _disconnected(request.receive), grammar)
            held.push_async_callback(segments.aclose)  # first of all: stop the work, then close the file
            return TranscriptEvents(segments, settings.idle_timeout, held.pop_all())  # it holds them from here
        result = await engine.transcribe(params.file.file, hotwords, _disconnected(request.receive), grammar)
    return render(result, params)


def render(result: Transcription, params: TranscriptionParams) -> Response:
    segments = result.segments
    fmt = params.response_format
    if fmt == "json":
        return JSONResponse({"text": full_text(segments)})
    if fmt == "text":
        return PlainTextResponse(full_text(segments))
    if fmt == "srt":
        return PlainTextResponse(to_srt(segments))
    if fmt == "vtt":
        return PlainTextResponse(to_vtt(segments), media_type="text/vtt")
    body: dict = {
        "task": "transcribe",
        "language": "english",  # OpenAI names the language in full here
        "duration": round(result.duration, 3),
        "text": full_text(segments),
        "segments": [{"id": s.id, "start": s.start, "end": s.end, "text": s.text} for s in segments],
    }
    if params.grammar:  # sentence templates: what the command means, per segment and for the upload
        body["intent"] = first_intent(segments)
        for entry, s in zip(body["segments"], segments, strict=True):
            entry["intent"] = intent_json(s.intent)
    if "word" in params.granularities:
        body["words"] = [{"word": w.word, "start": w.start, "end": w.end} for s in segments for w in s.words]
    return JSONResponse(body)
