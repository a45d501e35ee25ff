"""`python -m service.healthcheck`: exit 0 when the local server answers /healthz, 1 otherwise.

The container's HEALTHCHECK runs this: the slim image has no curl, and reading the port from the same
settings as the server means a changed EDGESCRIBE_PORT cannot leave the check probing the wrong port.
"""

from __future__ import annotations

import sys
import urllib.request

from .settings import Settings, SettingsError

TIMEOUT_SECONDS = 5.0  # well under the HEALTHCHECK --timeout, so the message below gets printed


def main() -> int:
    try:
        port = Settings.from_env().port
    except SettingsError as e:
        print(f"healthcheck: {e}", file=sys.stderr)
        return 1
    url = f"http://127.0.0.1:{port}/healthz"
    try:
        with urllib.request.urlopen(url, timeout=TIMEOUT_SECONDS) as response:
            return 0 if response.status == 200 else 1
    except OSError as e:
        print(f"healthcheck: {url}: {e}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
