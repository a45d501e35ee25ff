"""The service serves without torch: its import path in a process where torch cannot be imported
transcribes the fixture clips to the same words and timings as the torch engine."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("onnxruntime", reason="the lean runtime is ONNX Runtime's")

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = Path(__file__).parent / "fixtures"

# Runs in a fresh interpreter: blocks torch (as if not installed) when asked, starts the app through
# its lifespan as `edgescribe serve` does, and posts every fixture clip for word timestamps.
SCRIPT = r"""
import importlib.abc, json, sys

class NoTorch(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name == "torch" or name.startswith("torch."):
            raise ModuleNotFoundError(f"No module named {name!r} (blocked by the test)", name=name)
        return None

block, engine, clips = sys.argv[1] == "block", sys.argv[2], sys.argv[3:]
if block:
    sys.meta_path.insert(0, NoTorch())

from fastapi.testclient import TestClient

from service.app import create_app
from service.settings import Settings

out = {"clips": {}}
with TestClient(create_app(Settings(engine=engine))) as client:
    out["health"] = client.get("/healthz").json()
    for clip in clips:
        with open(clip, "rb") as f:
            r = client.post("/v1/audio/transcriptions", files={"file": f},
                            data={"response_format": "verbose_json", "timestamp_granularities[]": "word"})
        r.raise_for_status()
        body = r.json()
        out["clips"][clip] = {"text": body["text"], "words": body["words"]}
out["torch_modules"] = sorted(m for m in sys.modules if m == "torch" or m.startswith("torch."))
print(json.dumps(out))
"""


def _serve(block_torch: bool, engine: str) -> dict:
    clips = [str(p) for p in sorted(FIXTURES.glob("utt0*.flac"))]
    r = subprocess.run([sys.executable, "-c", SCRIPT, "block" if block_torch else "allow", engine, *clips],
                       cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    return json.loads(r.stdout.strip().splitlines()[-1])


def test_service_without_torch_transcribes_like_the_torch_engine():
    lean = _serve(block_torch=True, engine="auto")
    assert lean["health"]["engine"] == "onnxruntime"
    assert lean["torch_modules"] == []
    reference = _serve(block_torch=False, engine="torch")
    assert reference["health"]["engine"] == "torch" and reference["torch_modules"]
    assert len(lean["clips"]) == 6
    for clip, result in reference["clips"].items():
        assert lean["clips"][clip]["text"] == result["text"], clip
        got = [(w["word"], w["start"], w["end"]) for w in lean["clips"][clip]["words"]]
        assert got == [(w["word"], w["start"], w["end"]) for w in result["words"]], clip
    assert any(r["words"] for r in reference["clips"].values())  # the comparison compares something


def test_without_torch_a_model_without_a_graph_is_refused_with_the_fix(tmp_path):
    from model.checkpoint import ModelBundle, save_model
    from model.config import NetworkConfig

    path = tmp_path / "nograph.esm"
    save_model(ModelBundle.new(NetworkConfig(hidden=16, conv_channels=2, depth=1)), path)
    code = SCRIPT.split("from fastapi")[0] + (
        "from model.runtime import load_serving_model\n"
        "from model.container import CheckpointError\n"
        "try:\n    load_serving_model(clips[0])\nexcept CheckpointError as e:\n    print(e)\n")
    r = subprocess.run([sys.executable, "-c", code, "block", "auto", str(path)], cwd=ROOT, capture_output=True,
                       text=True, timeout=120)
    assert r.returncode == 0, r.stderr[-3000:]
    assert "torch is not installed" in r.stdout and "edgescribe export" in r.stdout


def test_onnx_runtime_is_loaded_with_its_telemetry_off(tmp_path):
    # ONNX Runtime's Linux wheels write a telemetry device id into TMPDIR at import unless told not to.
    import os

    env = {k: v for k, v in os.environ.items() if k != "ORT_DISABLE_TELEMETRY"}
    env["TMPDIR"] = str(tmp_path)
    code = "from model.runtime import load_serving_model; print(load_serving_model(None, 'onnxruntime').engine)"
    r = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0 and r.stdout.strip() == "onnxruntime", r.stderr[-2000:]
    assert list(tmp_path.iterdir()) == []
