"""`python -m service.healthcheck`: exit 0 when the local server answers, 1 otherwise.

The container's HEALTHCHECK runs this: the slim image has no curl, and reading the ports from the same
settings as the server means a changed EDGESCRIBE_PORT cannot leave the check probing the wrong port.
A container runs either `edgescribe serve` (asked for /healthz) or `edgescribe wyoming` (asked to
``describe`` itself on EDGESCRIBE_WYOMING_PORT); one of the two answering is healthy.
"""

from __future__ import annotations

import json
import socket
import sys
import urllib.request

from .settings import Settings, SettingsError

TIMEOUT_SECONDS = 5.0  # well under the HEALTHCHECK --timeout, so the message below gets printed
MAX_LINE = 2**16  # the longest event header a Wyoming server sends (asyncio's line limit)


def wyoming_answers(port: int) -> bool:
    """Whether a Wyoming server on this machine's ``port`` answers ``describe`` with ``info``."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT_SECONDS) as sock:
            sock.sendall(b'{"type": "describe"}\n')
            header = json.loads(sock.makefile("rb").readline(MAX_LINE))
        return isinstance(header, dict) and header.get("type") == "info"
    except (OSError, ValueError):
        return False


def main() -> int:
    try:
        settings = Settings.from_env()
    except SettingsError as e:
        print(f"healthcheck: {e}", file=sys.stderr)
        return 1
    url = f"http://127.0.0.1:{settings.port}/healthz"
    try:
        with urllib.request.urlopen(url, timeout=TIMEOUT_SECONDS) as response:
            return 0 if response.status == 200 else 1
    except OSError as e:
        if wyoming_answers(settings.wyoming_port):
            return 0
        print(f"healthcheck: {url}: {e}; no Wyoming server on port {settings.wyoming_port} either", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
