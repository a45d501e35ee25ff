"""The dependencies handlers declare: settings, the engine, and the API-key check."""

from __future__ import annotations

import hmac
from typing import Annotated

from fastapi import Depends
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from starlette.requests import HTTPConnection

from .errors import Unauthorized
from .metrics import Metrics
from .recognizer import Engine
from .settings import Settings, get_settings


def settings_of(app) -> Settings:
    """The settings an app was made with (``create_app(settings)``), else the process's, from the environment.

    Kept on ``app.state`` rather than in ``app.dependency_overrides``: with any override in place, FastAPI
    rebuilds every dependency's signature on every request (``inspect.signature``: 6% of the server's
    time on small uploads in a py-spy profile; 10.2 -> 9.5 ms a request for 0.1 s of audio).
    """
    settings = getattr(app.state, "settings", None)
    return settings if settings is not None else get_settings()


def app_settings(conn: HTTPConnection) -> Settings:
    return settings_of(conn.app)


SettingsDep = Annotated[Settings, Depends(app_settings)]


def get_engine(conn: HTTPConnection) -> Engine:
    return conn.app.state.engine


def get_metrics(conn: HTTPConnection) -> Metrics:
    return conn.app.state.metrics


EngineDep = Annotated[Engine, Depends(get_engine)]
MetricsDep = Annotated[Metrics, Depends(get_metrics)]


def check_api_key(conn: HTTPConnection, settings: Settings) -> None:
    """Raise ``Unauthorized`` unless the key is off or the request carries ``Authorization: Bearer KEY``."""
    if settings.api_key is None:
        return
    scheme, _, token = conn.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not token:
        raise Unauthorized("this server needs an API key: send the header 'Authorization: Bearer KEY'")
    if not hmac.compare_digest(token.strip().encode(), settings.api_key.encode()):
        raise Unauthorized("the API key is wrong: send the key the server was started with "
                           "(EDGESCRIBE_API_KEY) as 'Authorization: Bearer KEY'")


# Declares the bearer scheme in the OpenAPI description, so /docs offers "Authorize" for the key;
# the check itself is check_api_key's, shared with the WebSocket route.
_bearer = HTTPBearer(auto_error=False, description="the server's EDGESCRIBE_API_KEY, when it has one")


def require_api_key(conn: HTTPConnection, settings: SettingsDep,
                    _: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]) -> None:
    check_api_key(conn, settings)


ApiKey = Depends(require_api_key)
