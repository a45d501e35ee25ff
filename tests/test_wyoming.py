"""`edgescribe wyoming` as its own process on loopback, driven by PyPI wyoming's own client, as Home Assistant
drives it: describe, transcripts of a spoken fixture sent in other formats, hostile and vanishing clients,
the limits, a graceful stop, the API-key rule, and template mode."""

from __future__ import annotations

import asyncio
import contextlib
import importlib.metadata
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from test_service_support import STARTUP_SECONDS, free_port, speech_pcm16, wait_until
from wyoming.asr import Transcribe, Transcript
from wyoming.audio import AudioChunk, AudioStart, AudioStop
from wyoming.client import AsyncTcpClient
from wyoming.error import Error
from wyoming.event import Event, async_read_event
from wyoming.info import Describe, Info
from wyoming.ping import Ping

from benchmarks.service import stop_process
from edgescribe.cli import main
from model.audio import load_audio
from service.settings import Settings
from service.wyoming.connection import pcm16_mono
from service.wyoming.server import check_exposure

ROOT = Path(__file__).parent.parent
COMMANDS = Path(__file__).parent / "fixtures" / "commands"
WYOMING = [sys.executable, "-m", "edgescribe.cli", "wyoming", "--host", "127.0.0.1"]
HEARD = "call one two three"  # fixture utt02, as the embedded model hears it in every format below
IDLE = 3.0  # the module server's idle timeout, in seconds: short, so that an idle client is cut quickly
MAX_AUDIO = 6.0  # its longest utterance, in seconds; the fixtures are under 2 s


class Server:
    """A running `edgescribe wyoming` and what it has printed."""

    def __init__(self, args: list[str], env: dict[str, str] | None = None, port_from_env: bool = False) -> None:
        self.port = free_port()
        self.lines: list[str] = []
        env = {**os.environ, **(env or {})}
        if port_from_env:  # and the HTTP service's port beside it, which must not move this one
            env.update({"EDGESCRIBE_WYOMING_PORT": str(self.port), "EDGESCRIBE_PORT": str(free_port())})
        else:
            args = ["--port", str(self.port), *args]
        self.proc = subprocess.Popen([*WYOMING, *args], cwd=ROOT, text=True, env=env,
                                     stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        threading.Thread(target=lambda: self.lines.extend(self.proc.stdout), daemon=True).start()

        def ready() -> bool:
            if self.proc.poll() is not None:
                raise AssertionError(f"edgescribe wyoming exited with {self.proc.returncode}: {self.output}")
            return any("Wyoming server on" in line for line in self.lines)

        wait_until(ready, "edgescribe wyoming to start")

    @property
    def output(self) -> str:
        return "".join(self.lines)

    def stop(self) -> int:
        stop_process(self.proc, STARTUP_SECONDS)
        return self.proc.returncode


@contextlib.contextmanager
def wyoming_server(*args: str, env: dict[str, str] | None = None, port_from_env: bool = False) -> Iterator[Server]:
    server = Server(list(args), env, port_from_env)
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def server():
    # One utterance slot, so that a slot a vanished client kept would show at once.
    with wyoming_server("--max-streams", "1", "--idle-timeout", str(IDLE),
                        "--max-audio-seconds", str(MAX_AUDIO)) as s:
        yield s


def run(coro):
    return asyncio.run(asyncio.wait_for(coro, STARTUP_SECONDS))


def encode(samples: np.ndarray, width: int, channels: int) -> bytes:
    """16-bit mono samples as interleaved PCM of ``width`` bytes (8-bit unsigned, as WAV has it)."""
    x = np.repeat(samples.astype(np.int32)[:, None], channels, axis=1).reshape(-1)
    if width == 1:
        return ((x >> 8) + 128).astype(np.uint8).tobytes()
    wide = x << 16  # the sample in the top bits of a 32-bit word, whose top ``width`` bytes are kept
    return wide.astype("<i4").view(np.uint8).reshape(-1, 4)[:, 4 - width :].tobytes()


async def utterance(client: AsyncTcpClient, pcm: bytes, rate: int, width: int = 2, channels: int = 1,
                    chunk_seconds: float = 0.1, start: bool = True) -> None:
    step = int(rate * chunk_seconds) * width * channels
    if start:
        await client.write_event(AudioStart(rate, width, channels).event())
    for i in range(0, len(pcm), step):
        await client.write_event(AudioChunk(rate, width, channels, pcm[i : i + step]).event())
    await client.write_event(AudioStop().event())


async def transcribe(port: int, pcm: bytes, rate: int, width: int = 2, channels: int = 1, **kw) -> Event:
    async with AsyncTcpClient("127.0.0.1", port) as client:
        await client.write_event(Transcribe(language="en").event())
        await utterance(client, pcm, rate, width, channels, **kw)
        return await client.read_event()


async def exchange(port: int, *raw: bytes) -> list[Event | None]:
    """Send raw bytes; every event the server answers until it closes the connection (None at the end)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        for part in raw:
            writer.write(part)
        await writer.drain()
        writer.write_eof()  # all sent: a server that reads on after an error sees the end at once
        events: list[Event | None] = []
        while (event := await async_read_event(reader)) is not None:
            events.append(event)
        return [*events, None]
    finally:
        writer.close()


def test_startup_line_names_engine_and_uri(server):
    assert f"Wyoming server on tcp://127.0.0.1:{server.port} with the onnxruntime engine" in server.output


def test_describe_answers_one_english_asr_program_with_the_model(server):
    async def go():
        async with AsyncTcpClient("127.0.0.1", server.port) as client:
            await client.write_event(Describe().event())
            return await client.read_event()

    event = run(go())
    assert Info.is_type(event.type)
    (program,) = Info.from_event(event).asr
    (model,) = program.models
    version = importlib.metadata.version("edgescribe")
    assert (program.name, program.installed, program.version) == ("edgescribe", True, version)
    assert "Apache-2.0" in program.description
    assert (model.name, model.installed, model.languages, model.version) == ("edgescribe-default", True, ["en"],
                                                                             version)
    assert "CC BY 4.0" in model.description and program.attribution.name == "EdgeScribe"


@pytest.mark.parametrize(("rate", "width", "channels"), [(16000, 2, 1), (22050, 2, 2), (8000, 2, 1), (44100, 3, 1),
                                                         (48000, 4, 2), (11025, 2, 6)])
def test_spoken_fixture_is_transcribed_from_any_format(server, rate, width, channels):
    pcm = encode(speech_pcm16((2,), pause_seconds=0.5, rate=rate), width, channels)
    event = run(transcribe(server.port, pcm, rate, width, channels))
    assert Transcript.is_type(event.type), event
    assert (Transcript.from_event(event).text, event.data["language"]) == (HEARD, "en")


def test_an_utterance_may_start_with_its_first_chunk_and_silence_is_empty(server):
    pcm = speech_pcm16((2,), pause_seconds=0.5).tobytes()
    assert run(transcribe(server.port, pcm, 16000, start=False)).data["text"] == HEARD
    silence = bytes(16000 * 2)
    assert run(transcribe(server.port, silence, 16000)).data["text"] == ""


def test_one_connection_carries_utterances_in_turn_and_answers_pings(server):
    pcm = speech_pcm16((2,), pause_seconds=0.5).tobytes()

    async def go():
        async with AsyncTcpClient("127.0.0.1", server.port) as client:
            texts = []
            for _ in range(2):
                await utterance(client, pcm, 16000)
                texts.append((await client.read_event()).data["text"])
            await client.write_event(Ping(text="hi").event())
            return texts, await client.read_event()

    texts, pong = run(go())
    assert texts == [HEARD, HEARD] and (pong.type, pong.data["text"]) == ("pong", "hi")


def test_events_the_server_does_not_know_are_dropped(server):
    events = run(exchange(server.port, b'{"type": "synthesize", "data": {"text": "hello"}}\n',
                          b'{"type": "describe"}\n', b'{"type": "audio-stop"}\n'))
    # Nothing for the unknown event; describe and the (empty) utterance are answered, and the end is the client's.
    assert [e.type if e else None for e in events] == ["info", "transcript", None]
    assert events[1].data["text"] == ""


@pytest.mark.parametrize(("raw", "code", "says"), [
    (b"this is not json\n", "bad_field", "JSON object"),
    (b'{"data": {}}\n', "bad_field", '"type"'),
    (b'{"type": "audio-chunk", "data": {"width": 2, "channels": 1}, "payload_length": 2}\n\0\0', "bad_field",
     "'rate'"),
    (b'{"type": "audio-start", "data": {"rate": 4000, "width": 2, "channels": 1}}\n', "bad_field", "rate must be"),
    (b'{"type": "audio-start", "data": {"rate": 16000, "width": 5, "channels": 1}}\n', "bad_field", "width must be"),
    (b'{"type": "audio-chunk", "data": {"rate": 16000, "width": 2, "channels": 2}, "payload_length": 6}\n' + bytes(6),
     "bad_field", "whole number of 4-byte frames"),
    (b'{"type": "transcribe", "data": {"language": "de"}}\n', "bad_field", "English only"),
    (b'{"type": "transcribe", "data": {"name": "whisper"}}\n', "bad_field", "edgescribe"),
    # Announced, never sent: refused from the header, before a byte of it is read.
    (b'{"type": "audio-chunk", "data": {"rate": 16000, "width": 2, "channels": 1}, "payload_length": 1000000000}\n',
     "upload_too_large", "EDGESCRIBE_MAX_MESSAGE_BYTES"),
    (b'{"type": "describe", "pad": "' + b"x" * 70000 + b'"}\n', "upload_too_large", "header"),
])
def test_a_malformed_event_gets_an_error_event_then_the_connection_closes(server, raw, code, says):
    events = run(exchange(server.port, raw))
    assert len(events) == 2 and events[1] is None, events
    error = Error.from_event(events[0])
    assert events[0].type == "error" and error.code == code and says in error.text, error
    assert run(transcribe(server.port, speech_pcm16((2,), 0.5).tobytes(), 16000)).data["text"] == HEARD


def _transcript_when_a_slot_is_free(port: int, pcm: bytes) -> Event:
    """A transcript, retrying while the one utterance slot is still held (a slot is freed when the server
    notices the client has gone, a moment after it has)."""
    answers: list[Event] = []

    def free() -> bool:
        answers.append(run(transcribe(port, pcm, 16000)))
        return not (answers[-1].type == "error" and answers[-1].data["code"] == "busy")

    wait_until(free, "the utterance slot to be freed")
    return answers[-1]


def test_a_client_that_vanishes_mid_utterance_leaves_no_slot_behind(server):
    pcm = speech_pcm16((2,), pause_seconds=0.5).tobytes()

    async def vanish():
        client = AsyncTcpClient("127.0.0.1", server.port)
        await client.connect()
        await client.write_event(AudioStart(16000, 2, 1).event())
        await client.write_event(AudioChunk(16000, 2, 1, pcm[: len(pcm) // 2]).event())
        await asyncio.sleep(0.2)
        await client.disconnect()  # no audio-stop, and never reads

    for _ in range(3):  # the server has one slot: each vanished client must have given it back
        run(vanish())
        assert _transcript_when_a_slot_is_free(server.port, pcm).data["text"] == HEARD


def test_more_utterances_than_slots_get_a_busy_error(server):
    pcm = speech_pcm16((2,), pause_seconds=0.5).tobytes()

    async def go():
        async with AsyncTcpClient("127.0.0.1", server.port) as first:
            await first.write_event(AudioStart(16000, 2, 1).event())
            await first.write_event(AudioChunk(16000, 2, 1, pcm).event())
            await first.write_event(Ping().event())
            await first.read_event()  # pong: the first utterance holds the slot now
            async with AsyncTcpClient("127.0.0.1", server.port) as second:
                await utterance(second, pcm, 16000)
                refused = await second.read_event()
            await first.write_event(AudioStop().event())
            return refused, await first.read_event()

    refused, transcript = run(go())
    assert (refused.type, refused.data["code"]) == ("error", "busy")
    assert "EDGESCRIBE_MAX_STREAMS" in refused.data["text"]
    assert transcript.data["text"] == HEARD


def test_connections_beyond_the_cap_get_a_busy_error_and_the_open_one_goes_on():
    with wyoming_server("--max-connections", "1") as s:
        async def go():
            async with AsyncTcpClient("127.0.0.1", s.port) as first:
                await first.write_event(Ping().event())
                assert (await first.read_event()).type == "pong"  # the first connection is open now
                async with AsyncTcpClient("127.0.0.1", s.port) as second:
                    refused = await second.read_event()
                    after = await second.read_event()  # then the server closes it
                await first.write_event(Ping().event())
                return refused, after, await first.read_event()

        refused, after, pong = run(go())
        assert (refused.type, refused.data["code"]) == ("error", "busy")
        assert "EDGESCRIBE_MAX_CONNECTIONS" in refused.data["text"]
        assert after is None and pong.type == "pong"
        # The refused connection gave its place back: a new one is served once the first has gone.
        assert run(transcribe(s.port, speech_pcm16((2,), pause_seconds=0.5).tobytes(), 16000)).data["text"] == HEARD


def test_an_utterance_over_the_longest_allowed_gets_an_error(server):
    long = np.tile(speech_pcm16((2,), pause_seconds=0.5), int(MAX_AUDIO) + 1).tobytes()
    event = run(transcribe(server.port, long, 16000, chunk_seconds=1.0))
    assert (event.type, event.data["code"]) == ("error", "audio_too_long"), event


def test_a_client_silent_mid_utterance_is_told_and_closed(server):
    async def go():
        async with AsyncTcpClient("127.0.0.1", server.port) as client:
            await client.write_event(AudioStart(16000, 2, 1).event())
            started = time.monotonic()
            event = await client.read_event()
            return event, time.monotonic() - started, await client.read_event()

    event, waited, after = run(go())
    assert (event.type, event.data["code"], after) == ("error", "idle_timeout", None)
    assert waited >= IDLE - 0.1


def test_sigterm_lets_the_open_utterance_finish_then_stops():
    pcm = speech_pcm16((2,), pause_seconds=0.5).tobytes()
    with wyoming_server(port_from_env=True) as s:
        async def go():
            async with AsyncTcpClient("127.0.0.1", s.port) as client:
                await client.write_event(AudioStart(16000, 2, 1).event())
                await client.write_event(AudioChunk(16000, 2, 1, pcm).event())
                await client.write_event(Ping().event())
                await client.read_event()  # pong: the utterance is open
                s.proc.send_signal(signal.SIGTERM)
                await asyncio.sleep(0.5)
                await client.write_event(AudioStop().event())
                return await client.read_event(), await client.read_event()

        transcript, after = run(go())
        assert (transcript.data["text"], after) == (HEARD, None)  # its transcript, then the connection closes
        assert s.proc.wait(timeout=STARTUP_SECONDS) == 0
        with pytest.raises(OSError):  # and it is really gone
            run(asyncio.open_connection("127.0.0.1", s.port))


def test_the_container_healthcheck_finds_the_wyoming_server(server):
    def check(wyoming_port: int) -> subprocess.CompletedProcess:
        env = {**os.environ, "EDGESCRIBE_PORT": str(free_port()), "EDGESCRIBE_WYOMING_PORT": str(wyoming_port)}
        return subprocess.run([sys.executable, "-m", "service.healthcheck"], cwd=ROOT, env=env, capture_output=True,
                              text=True, timeout=60)

    assert check(server.port).returncode == 0  # no HTTP service, but a Wyoming server that answers describe
    dead = check(free_port())
    assert dead.returncode == 1 and "healthz" in dead.stderr and "no Wyoming server" in dead.stderr


def test_with_an_api_key_it_serves_loopback_only_unless_told(monkeypatch, capsys):
    keyed = Settings(api_key="k", host="0.0.0.0")
    with pytest.raises(Exception, match="no authentication.*--allow-unauthenticated"):
        check_exposure(keyed, allow_unauthenticated=False)
    check_exposure(keyed, allow_unauthenticated=True)
    for host in ("127.0.0.1", "::1", "localhost"):
        check_exposure(Settings(api_key="k", host=host), allow_unauthenticated=False)
    check_exposure(Settings(host="0.0.0.0"), allow_unauthenticated=False)  # no key: nothing was promised
    monkeypatch.setenv("EDGESCRIBE_API_KEY", "k")
    assert main(["wyoming", "--host", "0.0.0.0"]) == 2  # refused before any model is loaded
    assert "EDGESCRIBE_API_KEY is set, but the Wyoming protocol has no authentication" in capsys.readouterr().err


def test_pcm_of_any_width_and_channel_count_becomes_16_bit_mono():
    samples = np.array([0, 256, -256, 32767, -32768, 12800], "<i2")
    for width in (2, 3, 4):
        assert np.array_equal(np.frombuffer(pcm16_mono(encode(samples, width, 1), width, 1), "<i2"), samples)
    eight = np.frombuffer(pcm16_mono(encode(samples, 1, 1), 1, 1), "<i2")
    assert np.array_equal(eight, samples & ~0xFF)  # 8 bits keep the top byte
    stereo = np.stack([samples, np.zeros_like(samples)], 1).reshape(-1).tobytes()
    assert np.array_equal(np.frombuffer(pcm16_mono(stereo, 2, 2), "<i2"), np.round(samples / 2))  # averaged


# --- template mode --------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def sentences(tmp_path_factory) -> Path:
    """The template tests' file with the home's entity names written into it, as a user's own file has them."""
    path = tmp_path_factory.mktemp("wyoming") / "sentences.yaml"
    path.write_text((COMMANDS / "commands.yaml").read_text().replace(
        "lists:\n", "lists:\n  name:\n    values: [kitchen light, tv]\n", 1))
    return path


@pytest.fixture(scope="module")
def template_server(sentences):
    with wyoming_server("--sentences", str(sentences)) as s:
        yield s


def _command(clip: str) -> bytes:
    audio = load_audio(COMMANDS / f"{clip}.flac", 16000)
    return np.clip(np.round(audio * 32768), -32768, 32767).astype("<i2").tobytes()


@pytest.mark.parametrize(("clip", "texts", "slots"), [
    # The template makes the plural optional; cmd00 runs "lights to" together (Whisper tiny.en and base hear
    # "light"): either spelling, the same intent.
    ("cmd00", ("set the kitchen lights to fifty percent", "set the kitchen light to fifty percent"),
     {"area": {"value": "kitchen", "text": "kitchen"}, "brightness": {"value": 50, "text": "fifty"}}),
    # A 1.2 s pause where no sentence can end: still one command.
    ("cmd03", ("set the living room lights to twenty percent",),
     {"area": {"value": "living_room", "text": "living room"}, "brightness": {"value": 20, "text": "twenty"}}),
])
def test_template_mode_answers_the_sentence_and_its_intent(template_server, clip, texts, slots):
    event = run(transcribe(template_server.port, _command(clip), 16000))
    assert Transcript.from_event(event).text in texts
    intent = event.data["intent"]
    assert (intent["name"], intent["slots"]) == ("HassLightSet", slots) and 0 < intent["confidence"] <= 1


def test_template_mode_answers_nothing_for_speech_outside_the_templates(template_server):
    # Free decoding hears HEARD in this clip; no template sentence is near it.
    assert run(transcribe(template_server.port, speech_pcm16((2,), 0.5).tobytes(), 16000)).data["text"] == ""
    event = run(transcribe(template_server.port, _command("cmd05"), 16000))
    assert (event.data["text"], event.data["intent"]) == ("", None)


def test_template_mode_starts_only_with_a_template_it_can_compile(tmp_path, capsys):
    bad = tmp_path / "bad.yaml"
    bad.write_text("intents:\n  A:\n    data:\n      - sentences:\n          - 'turn (on'\n")
    assert main(["wyoming", "--host", "127.0.0.1", "--sentences", str(bad)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("edgescribe wyoming: ") and "bad.yaml" in err and "line 5" in err
    assert main(["wyoming", "--host", "127.0.0.1", "--sentences", str(tmp_path / "none.yaml")]) == 2
    assert "none.yaml" in capsys.readouterr().err
