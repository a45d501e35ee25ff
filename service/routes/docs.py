"""GET /docs: the API's Swagger UI, with its script and style served from the package, so it works offline.

FastAPI's own /docs loads Swagger UI from a CDN, which a device without internet cannot reach; this is
FastAPI's documented self-hosting recipe (``docs_url=None``, then ``get_swagger_ui_html`` with local
URLs). The two files come from PyPI's ``swagger-ui-bundle-v2`` (Swagger UI 5.31.0, Apache-2.0, its
licence in the package's metadata), a dependency, rather than 1.7 MB vendored into this repository.
ReDoc (FastAPI's /redoc) is off: its bundle would add another megabyte for a second view of the same
description. Like /openapi.json these need no API key: they hold no data, and the page's "Authorize"
sends the key with the calls it tries.
"""

from __future__ import annotations

from fastapi import APIRouter, Request, Response
from fastapi.openapi.docs import get_swagger_ui_html
from swagger_ui_bundle import swagger_ui_path

from ..errors import NotFound

router = APIRouter(include_in_schema=False)

ASSETS = {
    "swagger-ui-bundle.js": "text/javascript",
    "swagger-ui.css": "text/css",
}
ASSET_URL = "/static/swagger/"
# Only this server; 'unsafe-inline' for the page's one inline script, FastAPI's, which starts Swagger UI.
CSP = "default-src 'self'; script-src 'self' 'unsafe-inline'; img-src 'self' data:"


@router.get("/docs")
async def docs(request: Request) -> Response:
    app = request.app
    page = get_swagger_ui_html(
        openapi_url=app.openapi_url, title=f"{app.title} API",
        swagger_js_url=ASSET_URL + "swagger-ui-bundle.js", swagger_css_url=ASSET_URL + "swagger-ui.css",
        swagger_favicon_url="data:,",  # no icon rather than FastAPI's, from its website
        oauth2_redirect_url=None,  # the API's only scheme is a bearer key: no OAuth2 flow to return from
        swagger_ui_parameters={"validatorUrl": None},  # never send the description to validator.swagger.io
    )
    page.headers["Content-Security-Policy"] = CSP
    return page


@router.get(ASSET_URL + "{name}")
async def asset(name: str) -> Response:
    media_type = ASSETS.get(name)
    if media_type is None:
        raise NotFound(f"no documentation asset {name!r}", "name")
    # Cached for a day: the files change only with the package, and the script is 1.5 MB.
    return Response((swagger_ui_path / name).read_bytes(), media_type=media_type,
                    headers={"Cache-Control": "public, max-age=86400"})
