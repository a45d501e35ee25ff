"""create_app(): the FastAPI application. Its lifespan loads the model once and starts the inference pool.

Nothing happens at import time. Settings are the ``settings`` given here, or the environment's (the
cached ``get_settings``), kept on ``app.state`` (``deps.settings_of``), so the lifespan and every handler
see the same values.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import logging
from collections.abc import AsyncIterator
from pathlib import Path

from fastapi import FastAPI

from model.container import DEFAULT_MODEL
from model.lm import NgramLM, load_lm_choice
from model.recognize import Recognizer
from model.runtime import ServingModel, load_serving_model

from . import errors
from .deps import settings_of
from .metrics import Metrics, RequestCounter
from .recognizer import Engine
from .routes import ROUTERS
from .security import BrowserGuard
from .settings import Settings

log = logging.getLogger(__name__)

DEFAULT_MODEL_ID = "edgescribe-default"


@functools.lru_cache(maxsize=4)
def language_model(choice: str) -> NgramLM | None:
    """The LM a setting names, loaded once per process (it is read-only and shared by every stream)."""
    return load_lm_choice(choice)


def build_recognizer(bundle: ServingModel, settings: Settings) -> Recognizer:
    decoding = bundle.decoding
    if settings.beam_size is not None:
        decoding = dataclasses.replace(decoding, beam_size=settings.beam_size)
    return Recognizer(bundle, decoding, language_model(settings.lm))


def model_identity(settings: Settings) -> tuple[str, int]:
    """The id /v1/models reports (the file's stem) and its 'created' time (the file's mtime)."""
    path = Path(settings.model) if settings.model else DEFAULT_MODEL
    model_id = path.stem if settings.model else DEFAULT_MODEL_ID
    try:
        return model_id, int(path.stat().st_mtime)
    except OSError:
        return model_id, 0


def load_for(settings: Settings) -> ServingModel:
    """The model the settings name, on the engine they choose; raises CheckpointError with the reason."""
    model = load_serving_model(settings.model, settings.engine, settings.threads)
    if model.engine == "torch":
        import torch  # only the torch engine has torch's thread pool to size

        torch.set_num_threads(settings.threads)
    return model


def create_app(settings: Settings | None = None, bundle: ServingModel | None = None) -> FastAPI:
    """``settings`` overrides the environment; ``bundle`` skips loading (the CLI loads it first to report errors).

    ``bundle`` may also be a torch ``ModelBundle`` (tests build small ones), served on the torch engine.
    """
    metrics = Metrics()

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        s = app.state.settings = settings_of(app)
        loaded = bundle if bundle is not None else load_for(s)
        engine = Engine(build_recognizer(loaded, s), s, metrics, *model_identity(s))
        app.state.engine = engine
        log.info("serving model %s on %s: %d stream and %d upload inference workers x %d threads",
                 engine.model_id, engine.recognizer.engine, s.workers, s.upload_workers, s.threads)
        try:
            yield
        finally:
            engine.close()  # uvicorn has already let open requests finish; this drains the pool

    # /docs is served from the package by routes/docs.py (FastAPI's loads Swagger UI from a CDN); no /redoc.
    app = FastAPI(title="EdgeScribe", version="0.1.0", lifespan=lifespan, docs_url=None, redoc_url=None,
                  description="On-device speech transcription: OpenAI-compatible HTTP, Vosk-compatible WebSocket.")
    app.state.metrics = metrics
    app.state.settings = settings  # None: the environment's, read when the app starts (settings_of)
    errors.install(app)
    app.add_middleware(RequestCounter, metrics=metrics)
    # Outermost: a refused browser request never reaches the routes; every answer gets the security headers.
    app.add_middleware(BrowserGuard, settings=lambda: settings_of(app),
                       metrics=metrics)
    for router in ROUTERS:
        app.include_router(router)
    return app
