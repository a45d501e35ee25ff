"""scripts/image_root.py: what the image's slimmed environment keeps and drops, and the root it makes."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def _module():
    spec = importlib.util.spec_from_file_location("image_root", ROOT / "scripts" / "image_root.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _touch(path: Path, text: str = "x") -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def test_slim_drops_what_serving_never_loads_and_keeps_licences(tmp_path):
    venv = tmp_path / "venv"
    site = venv / "lib" / "python3.11" / "site-packages"
    keep = ["model/assets/default.esm", "model/recognize.py", "numpy/__init__.py", "numpy/LICENSE.txt",
            "onnxruntime/capi/onnxruntime_pybind11_state.so", "onnxruntime/ThirdPartyNotices.txt",
            "swagger_ui_bundle/vendor/swagger-ui-5/swagger-ui-bundle.js",
            "swagger_ui_bundle/vendor/swagger-ui-5/swagger-ui.css", "swagger_ui_bundle/vendor/swagger-ui-5/LICENSE",
            "uvicorn/__init__.py", "av/__init__.py"]
    drop = ["pip/__init__.py", "pip-26.0.dist-info/METADATA", "setuptools/__init__.py", "uvloop/__init__.py",
            "httptools/__init__.py", "onnxruntime/capi/libonnxruntime.so.1.32.0", "onnxruntime/tools/a.py",
            "onnxruntime/quantization/q.py", "numpy/_core/tests/test_a.py", "numpy/f2py/f.py",
            "numpy/__init__.pyi", "av/codec/codec.pxd", "swagger_ui_bundle/vendor/swagger-ui-5/swagger-ui.js.map",
            "numpy/__pycache__/x.pyc"]
    for name in keep + drop:
        _touch(site / name)
    _touch(venv / "bin" / "pip")
    _module().slim_venv(venv)
    assert [n for n in keep if not (site / n).exists()] == []
    assert [n for n in drop if (site / n).exists()] == []
    assert not (venv / "bin" / "pip").exists()


@pytest.mark.skipif(os.geteuid() != 0 or sys.platform != "linux", reason="chroot needs root on Linux")
def test_root_file_system_runs_python_as_the_service_user(tmp_path):
    """A root made around a tiny venv of this interpreter runs that venv's python in a chroot, as uid 10001."""
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    out = tmp_path / "root"
    r = subprocess.run([str(venv / "bin" / "python"), str(ROOT / "scripts" / "image_root.py"), "root",
                        "--venv", str(venv), "--out", str(out)], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    assert "edgescribe:x:10001:10001" in (out / "etc" / "passwd").read_text()
    assert oct((out / "tmp").stat().st_mode & 0o7777) == "0o1777"
    probe = "import json, os, lzma, ctypes, hashlib; print(os.getuid(), lzma.decompress(lzma.compress(b'ok')).decode())"
    r = subprocess.run(["chroot", "--userspec=10001:10001", str(out), str(venv / "bin" / "python"), "-I", "-c", probe],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ["10001", "ok"]
    stdlib = [p for p in out.rglob("idlelib")]
    assert stdlib == []  # what a server never imports stays out
