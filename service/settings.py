"""Every knob of the server, read once from ``EDGESCRIBE_*`` environment variables and checked at start-up.

``Settings`` is a frozen dataclass: each field is one knob, its environment variable is
``EDGESCRIBE_`` + the field name in upper case, and its metadata carries the help text and the
smallest value that makes sense. ``edgescribe serve`` turns each field into a command-line flag too,
so the two can never drift. ``get_settings`` reads them once per process; an app made with its own
settings (``create_app(settings)``: the CLI, the tests) keeps those on ``app.state`` (``service/deps.py``).
"""

from __future__ import annotations

import dataclasses
import functools
import os
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from model.config import ENGINES

ENV_PREFIX = "EDGESCRIBE_"
# model.audio.RATES, the rates a stream may be sent at; not imported, so that the health check, which reads
# these settings every 30 s, does not load numpy (tests/test_service_settings.py keeps the two equal).
STREAM_RATES = (8000, 192000)


class SettingsError(ValueError):
    """A setting has a value the server cannot run with; the message names the variable and the fix."""


def _knob(default: Any, help: str, minimum: float | None = None) -> Any:
    return field(default=default, metadata={"help": help, "minimum": minimum})


@dataclass(frozen=True)
class Settings:
    host: str = _knob("0.0.0.0", "address to listen on (0.0.0.0: every interface, as a container needs)")
    port: int = _knob(8000, "TCP port to listen on", minimum=0)
    wyoming_port: int = _knob(10300, "TCP port `edgescribe wyoming` listens on (10300: Home Assistant's usual one "
                                     "for speech-to-text)", minimum=0)
    model: str | None = _knob(None, "model file to serve (empty: the model embedded in the package)")
    engine: str = _knob("auto", "what runs the network: onnxruntime, torch, or auto (ONNX Runtime when the model "
                                "carries an ONNX graph and onnxruntime is installed, torch otherwise)")
    threads: int = _knob(1, "CPU threads per inference (torch's or ONNX Runtime's); keep threads x workers <= cores",
                         minimum=1)
    workers: int = _knob(2, "inference threads for live streams (uploads have their own: upload_workers)",
                         minimum=1)
    upload_workers: int = _knob(1, "inference threads for file uploads, apart from the streams' so that a long "
                                   "upload never delays a live stream", minimum=1)
    beam_size: int | None = _knob(None, "CTC beam width, 1 = greedy (empty: the model's own setting)", minimum=1)
    lm: str = _knob("default", "word language model fused into the beam search: default (the shipped one), "
                    "none, or a file from `edgescribe lm build`")
    max_upload_bytes: int = _knob(100 * 2**20, "largest transcription request body, in bytes (413 above)",
                                  minimum=1)
    max_audio_seconds: float = _knob(4 * 3600.0, "longest audio one request may hold, in seconds (413 above)",
                                     minimum=0.1)
    min_upload_bitrate: float = _knob(1000.0, "bits of upload per second of audio it may decode to, beyond its "
                                              "first 60 s (a few KB cannot hold hours of audio); 0: no floor",
                                      minimum=0)
    min_upload_rate: int = _knob(4096, "bytes per second an upload must average once idle_timeout has passed "
                                       "(a trickle cannot hold a request slot); 0: no floor", minimum=0)
    min_stream_realtime: float = _knob(0.5, "seconds of audio a live stream must send per second, on average, once "
                                            "idle_timeout has passed (live audio sends 1); 0: no floor", minimum=0)
    max_requests: int = _knob(4, "transcription requests served at once; more get 503 + Retry-After", minimum=1)
    max_streams: int = _knob(8, "WebSocket streams open at once; more are closed with 4503", minimum=1)
    max_message_bytes: int = _knob(2**20, "largest WebSocket message, in bytes", minimum=1024)
    stream_sample_rate: int = _knob(16000, "sample rate, in Hz, of a stream's PCM when its config names none "
                                           "(vosk-server assumes 8000; the model and the web page use 16000)",
                                    minimum=STREAM_RATES[0])
    max_alternatives: int = _knob(10, "most alternatives a stream's config may ask for (max_alternatives); more "
                                      "are cut to this, and no more than the beam holds come back; 0: none",
                                  minimum=0)
    max_template_bytes: int = _knob(1_000_000, "largest sentence-template file (YAML) a request or stream config "
                                               "may send as its grammar", minimum=1)
    max_template_nodes: int = _knob(200_000, "largest compiled graph of a grammar a request or stream sends (about "
                                             "0.5 kB of memory a node; 8 grammars are kept compiled); Home "
                                             "Assistant's Speech-to-Phrase set with a 50-entity home is ~16k",
                                    minimum=1000)
    max_hotwords: int = _knob(64, "most hotwords taken from a prompt or phrase_list (the last ones win)",
                              minimum=0)
    idle_timeout: float = _knob(30.0, "seconds a client may send nothing (stream messages, upload data) "
                                      "or leave stream replies unread before it is cut off", minimum=0.1)
    chunk_seconds: float = _knob(1.0, "audio decoded per step for uploads; bounds memory and sets how "
                                      "finely segments split at pauses", minimum=0.1)
    max_connections: int = _knob(256, "open TCP connections; more are closed at once (keep it under the process's "
                                      "file-descriptor limit)", minimum=1)
    header_timeout: float = _knob(10.0, "seconds a client has to send a request's headers before it is cut off",
                                  minimum=0.1)
    max_header_bytes: int = _knob(16384, "largest request line and headers, in bytes (400 above)", minimum=1024)
    allowed_origins: str = _knob("", "web origins besides the server's own that browsers may use it from, "
                                     "comma-separated ('*': any); others get 403")
    allowed_hosts: str = _knob("", "host names browsers may reach it by besides IP addresses, localhost and this "
                                   "machine's name, comma-separated ('*': any); stops DNS rebinding")
    retry_after: int = _knob(2, "seconds a busy client is told to wait (Retry-After)", minimum=0)
    shutdown_timeout: float = _knob(30.0, "seconds a graceful shutdown waits for open requests", minimum=0)
    api_key: str | None = _knob(None, "if set, every endpoint but /healthz and the API docs needs "
                                      "'Authorization: Bearer KEY'; set it in the environment, since flags show in ps")

    def __post_init__(self) -> None:
        hints = typing.get_type_hints(Settings)
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            base, optional = _unwrap(hints[f.name])
            if value is None:
                if not optional:
                    raise SettingsError(f"{env_name(f.name)} must be set")
                continue
            if base is float and isinstance(value, int) and not isinstance(value, bool):
                object.__setattr__(self, f.name, float(value))
            elif not isinstance(value, base) or isinstance(value, bool):
                raise SettingsError(f"{env_name(f.name)} must be {_KINDS[base]}, got {value!r}")
            minimum = f.metadata["minimum"]
            if minimum is not None and value < minimum:
                raise SettingsError(f"{env_name(f.name)} must be at least {minimum:g}, got {value!r}")
        if self.engine not in ENGINES:
            raise SettingsError(f"{env_name('engine')} must be one of {', '.join(ENGINES)}, got {self.engine!r}")
        for name in ("port", "wyoming_port"):
            if getattr(self, name) > 65535:
                raise SettingsError(f"{env_name(name)} must be at most 65535, got {getattr(self, name)}")
        if self.stream_sample_rate > STREAM_RATES[1]:
            raise SettingsError(f"{env_name('stream_sample_rate')} must be at most {STREAM_RATES[1]}, "
                                f"got {self.stream_sample_rate}")
        if self.api_key is not None and not self.api_key.strip():
            raise SettingsError(f"{env_name('api_key')} is blank; unset it or give a real key")
        if self.api_key is not None and not (self.api_key.isascii() and self.api_key.isprintable()):
            # HTTP header values are ASCII in practice (clients refuse or mangle others), so such a key never matches.
            raise SettingsError(f"{env_name('api_key')} must be printable ASCII: HTTP headers cannot carry others")

    def origins(self) -> frozenset[str]:
        return _names(self.allowed_origins)

    def hosts(self) -> frozenset[str]:
        return _names(self.allowed_hosts)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **overrides: Any) -> Settings:
        """Values from ``environ`` (default: the process environment), then ``overrides`` (e.g. CLI flags)."""
        environ = os.environ if environ is None else environ
        hints = typing.get_type_hints(cls)
        values: dict[str, Any] = {}
        for f in dataclasses.fields(cls):
            raw = environ.get(env_name(f.name))
            if raw is not None:
                values[f.name] = parse_value(f.name, raw, hints[f.name])
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**values)


_KINDS = {int: "an integer", float: "a number", str: "a string"}  # the words a message uses for a setting's type


def _names(value: str) -> frozenset[str]:
    return frozenset(n.strip().lower().rstrip("/") for n in value.split(",") if n.strip())


def env_name(field_name: str) -> str:
    return ENV_PREFIX + field_name.upper()


def _unwrap(hint: Any) -> tuple[type, bool]:
    """``int | None`` -> (int, True); ``int`` -> (int, False)."""
    if isinstance(hint, types.UnionType) or typing.get_origin(hint) is typing.Union:
        args = [a for a in typing.get_args(hint) if a is not type(None)]
        return args[0], True
    return hint, False


def parse_value(name: str, raw: str, hint: Any) -> Any:
    base, optional = _unwrap(hint)
    raw = raw.strip()
    if optional and raw == "":
        return None
    if base is str:
        return raw
    try:
        return base(raw)
    except ValueError:
        raise SettingsError(f"{env_name(name)} must be {_KINDS[base]}, got {raw!r}") from None


def field_types() -> dict[str, tuple[type, bool]]:
    """Each setting's value type and whether it may be empty, for building command-line flags."""
    return {name: _unwrap(hint) for name, hint in typing.get_type_hints(Settings).items()}


@functools.lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process's settings, read once. Tests replace this dependency instead of touching the environment."""
    return Settings.from_env()
