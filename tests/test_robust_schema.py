"""Schema-level fuzzing: schemathesis generates valid and invalid requests from the app's own OpenAPI
description and sends them to a real uvicorn on loopback. No answer may be a 5xx, and every error is
the JSON body of service/errors.py, whatever the request got wrong.

Only "not a server error" and our error shape are checked, not full conformance: the OpenAPI document
lists the success answers, while the error answers (400/401/404/413/415/503) are one shared shape
documented in service/errors.py rather than repeated on every operation.
"""

from __future__ import annotations

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.generation import GenerationMode
from test_service_support import live_server

from service.app import create_app
from service.settings import Settings

# Small limits so that the generated uploads reach the size and duration checks too.
SETTINGS = Settings(max_upload_bytes=64 * 1024, max_audio_seconds=10.0, workers=1)
EXAMPLES_PER_OPERATION = 25  # five operations; enough to reach every field, small enough for CI

# The description alone needs no model: create_app loads one only when its lifespan starts.
schema = schemathesis.openapi.from_dict(create_app(SETTINGS).openapi())
schema.config.generation.update(modes=list(GenerationMode), max_examples=EXAMPLES_PER_OPERATION,
                                deterministic=True)


@pytest.fixture(scope="module")
def base_url():
    with live_server(SETTINGS) as (address, _):
        yield f"http://{address}"


@schema.parametrize()
@settings(max_examples=EXAMPLES_PER_OPERATION, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                                 HealthCheck.filter_too_much])
def test_no_request_from_the_schema_gets_a_server_error(case, base_url):
    response = case.call_and_validate(base_url=base_url, checks=[not_a_server_error], timeout=60)
    if response.status_code >= 400:
        error = response.json()["error"]
        assert error["code"] == error["type"] and error["type"] and error["message"]
