"""GET / and its few static files: the page that records the microphone or takes a dropped file.

Files are served from a fixed table, so a client can never name a path on the server's disk.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter, Response

from ..deps import ApiKey
from ..errors import NotFound

router = APIRouter(dependencies=[ApiKey])

STATIC_DIR = Path(__file__).resolve().parent.parent / "static"
STATIC_FILES = {
    "app.js": "text/javascript",
    "pcm-worklet.js": "text/javascript",
    "style.css": "text/css",
}
# Everything the page needs comes from this server: no CDN, no fonts, no trackers.
CSP = "default-src 'self'; connect-src 'self' ws: wss:; media-src 'self' blob:; img-src 'self' data:"


def _file(name: str, media_type: str) -> Response:
    return Response((STATIC_DIR / name).read_bytes(), media_type=media_type,
                    headers={"Content-Security-Policy": CSP, "Cache-Control": "no-cache"})


@router.get("/", include_in_schema=False)
async def index() -> Response:
    return _file("index.html", "text/html; charset=utf-8")


@router.get("/static/{name}", include_in_schema=False)
async def static(name: str) -> Response:
    media_type = STATIC_FILES.get(name)
    if media_type is None:
        raise NotFound(f"no static file {name!r}", "name")
    return _file(name, media_type)
