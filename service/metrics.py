"""Prometheus metrics, one registry per app (so tests that build several apps never collide)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from starlette.types import ASGIApp, Message, Receive, Scope, Send

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.requests = Counter("edgescribe_requests", "HTTP requests by route and status; streams by close code",
                                ["endpoint", "status"], registry=r)
        self.audio_seconds = Counter("edgescribe_audio_seconds", "Seconds of audio transcribed",
                                     ["endpoint"], registry=r)
        self.processing_seconds = Counter("edgescribe_processing_seconds",
                                          "Seconds of inference spent transcribing", ["endpoint"], registry=r)
        # Per request or stream: inference seconds / audio seconds. Below 1 keeps up with real time.
        self.real_time_factor = Histogram("edgescribe_real_time_factor",
                                          "Inference time over audio duration, per request or stream", ["endpoint"],
                                          buckets=(0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0), registry=r)
        self.active_requests = Gauge("edgescribe_active_requests", "Transcription requests in progress",
                                     registry=r)
        self.active_streams = Gauge("edgescribe_active_streams", "WebSocket streams open", registry=r)
        self.errors = Counter("edgescribe_errors", "Failures by kind (see service/errors.py)", ["kind"],
                              registry=r)

    def observe(self, endpoint: str, audio_seconds: float, processing_seconds: float) -> None:
        self.audio_seconds.labels(endpoint=endpoint).inc(audio_seconds)
        self.processing_seconds.labels(endpoint=endpoint).inc(processing_seconds)
        if audio_seconds > 0:
            self.real_time_factor.labels(endpoint=endpoint).observe(processing_seconds / audio_seconds)

    def render(self) -> bytes:
        return generate_latest(self.registry)


class RequestCounter:
    """ASGI middleware: count each HTTP request by its route template (never the raw path) and status."""

    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        status = 500  # if the app fails before it starts a response

        async def send_and_note(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_and_note)
        finally:
            route = scope.get("route")
            endpoint = getattr(route, "path", None) or "unmatched"
            self.metrics.requests.labels(endpoint=endpoint, status=str(status)).inc()
