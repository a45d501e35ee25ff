from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

FIXTURES = Path(__file__).parent / "fixtures"
# Before any test imports onnxruntime: no telemetry from the tests either (see model.acoustic.import_onnxruntime).
os.environ.setdefault("ORT_DISABLE_TELEMETRY", "1")


@pytest.fixture(autouse=True)
def _deterministic_torch():
    torch.manual_seed(0)
    torch.set_num_threads(1)
    yield


@pytest.fixture
def fixtures_dir() -> Path:
    return FIXTURES
