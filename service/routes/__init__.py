"""Thin handlers: parse, call the engine, answer a schema."""

from . import docs, health, models, stream, transcriptions, web

ROUTERS = (health.router, models.router, transcriptions.router, stream.router, web.router, docs.router)
