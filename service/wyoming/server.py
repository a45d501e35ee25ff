"""The Wyoming server: what ``describe`` answers, who may be served, and a listener that stops gracefully.

On SIGTERM or SIGINT the server stops taking connections, closes those between utterances, lets each
open utterance get its transcript (for up to ``shutdown_timeout`` seconds), then closes the rest and
drains the inference pool. A second signal skips the wait.
"""

from __future__ import annotations

import asyncio
import functools
import importlib.metadata
import ipaddress
import logging
import signal
from collections.abc import Callable
from pathlib import Path

from wyoming.info import AsrModel, AsrProgram, Attribution, Info
from wyoming.server import AsyncTcpServer

from ..settings import Settings, SettingsError, env_name
from .connection import LANGUAGE, Connection, Service

log = logging.getLogger(__name__)

PROGRAM = "edgescribe"
ATTRIBUTION = Attribution(name="EdgeScribe", url="")  # the project has no public address yet
# The embedded model's training data, whose licences ask for attribution (README, "The embedded default model").
EMBEDDED_MODEL_NOTE = ("EdgeScribe's embedded English model, trained on speechocean762 (CC BY 4.0), the Free "
                       "Spoken Digit Dataset (CC BY-SA 4.0), the Asterisk prompts (CC BY-SA 3.0) and synthetic speech")


def package_version() -> str | None:
    try:
        return importlib.metadata.version("edgescribe")
    except importlib.metadata.PackageNotFoundError:  # run from a checkout that was never installed
        return None


def describe(settings: Settings, model_name: str) -> Info:
    """The ``info`` answer: one English ASR program with the served model."""
    version = package_version()
    try:
        licence = importlib.metadata.metadata("edgescribe").get("License")
    except importlib.metadata.PackageNotFoundError:
        licence = None
    if settings.model is None:
        model_note, model_version = EMBEDDED_MODEL_NOTE, version
    else:  # a model file of the user's own: what it was trained on is theirs to say
        model_note, model_version = f"an English model from {Path(settings.model).name}", None
    model = AsrModel(name=model_name, attribution=ATTRIBUTION, installed=True, description=model_note,
                     version=model_version, languages=[LANGUAGE])
    program = AsrProgram(name=PROGRAM, attribution=ATTRIBUTION, installed=True,
                         description="EdgeScribe on-device speech recognition" + (f" ({licence})" if licence else ""),
                         version=version, models=[model])
    return Info(asr=[program])


def is_loopback(host: str) -> bool:
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:  # a host name: it may resolve to anything
        return False


def check_exposure(settings: Settings, allow_unauthenticated: bool) -> None:
    """Refuse to serve other machines without authentication when the operator asked for it (an API key).

    The Wyoming protocol has no way to carry a key, so a server with EDGESCRIBE_API_KEY set would break
    that promise silently for everyone who can reach its port."""
    if settings.api_key is None or allow_unauthenticated or is_loopback(settings.host):
        return
    raise SettingsError(f"{env_name('api_key')} is set, but the Wyoming protocol has no authentication: anyone who "
                        f"can reach {settings.host}:{settings.wyoming_port} could use it. Listen on loopback "
                        "(--host 127.0.0.1), unset the key for this process, or pass --allow-unauthenticated")


class Listener(AsyncTcpServer):
    """wyoming's TCP server, which can also stop taking connections while the open ones finish."""

    def stop_accepting(self) -> None:
        if self._server is not None:
            self._server.close()

    def connections(self) -> list[Connection]:
        return [h for h in self._handlers.values() if isinstance(h, Connection)]

    async def wait_closed(self, seconds: float) -> None:
        """Wait for the connections' tasks (their clean-up) to end."""
        if self._handlers:
            await asyncio.wait(list(self._handlers), timeout=seconds)


async def serve(service: Service, host: str, port: int, ready: Callable[[str], None] = lambda uri: None) -> None:
    """Serve until SIGTERM or SIGINT, then stop as the module says. Raises OSError if it cannot listen."""
    loop = asyncio.get_running_loop()
    stop, force = asyncio.Event(), asyncio.Event()

    def on_signal() -> None:
        (force if stop.is_set() else stop).set()

    listener = Listener(host, port)
    await listener.start(functools.partial(Connection, service=service))
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, on_signal)
    try:
        ready(f"tcp://{host}:{port}")
        await stop.wait()
        log.info("stopping: no new connections; open utterances get their transcripts")
        listener.stop_accepting()
        service.draining = True
        await asyncio.gather(*(c.stop() for c in listener.connections() if c.utterance is None))
        deadline = loop.time() + service.settings.shutdown_timeout
        while service.engine.streams.used and loop.time() < deadline and not force.is_set():
            await asyncio.sleep(0.05)
        await listener.stop()
        await listener.wait_closed(service.settings.idle_timeout)
    finally:
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(sig)
        service.engine.close()
