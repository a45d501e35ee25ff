"""The checksummed container every EdgeScribe file uses, read and written without torch.

Layout (all integers little-endian):
    8 bytes  magic b"EDGESCRB"
    4 bytes  container version (uint32)
    8 bytes  payload length (uint64)
    32 bytes SHA-256 of the payload
    payload  ``torch.save`` of a dict of plain tensors, strings, numbers, bytes, lists and dicts

``checkpoint.read_container`` loads the payload with ``torch.load(weights_only=True)``. Serving on
ONNX Runtime has no torch, so ``read_arrays`` reads the same payload into NumPy arrays: a
``torch.save`` file is a zip of one pickle and one raw buffer per storage, and the pickle is read
with an unpickler that knows exactly the few globals a tensor needs (as ``weights_only`` does) and
refuses everything else, so no pickled code runs either way.
"""

from __future__ import annotations

import collections
import hashlib
import io
import lzma
import os
import pickle
import struct
import tempfile
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

MAGIC = b"EDGESCRB"
CONTAINER_VERSION = 1
HEADER = struct.Struct("<8sIQ32s")
DEFAULT_MODEL = Path(__file__).parent / "assets" / "default.esm"
ONNX_GRAPH_FORMAT = "edgescribe-onnx-step"  # model/onnx_export.py writes it
ONNX_GRAPH_VERSION = 1


class CheckpointError(ValueError):
    """The file is not a readable EdgeScribe checkpoint; the message says why."""


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Write to a temp file in the same folder, fsync, then rename over ``path``.

    A crash or a full disk leaves the previous file intact: never a half-written one under the name.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.chmod(tmp, 0o644)  # mkstemp makes files owner-only; a model is meant to be shared and shipped
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def pack(body: bytes) -> bytes:
    return HEADER.pack(MAGIC, CONTAINER_VERSION, len(body), hashlib.sha256(body).digest()) + body


def read_body(path: str | os.PathLike) -> bytes:
    """The checked payload bytes; CheckpointError for a missing, foreign, truncated or corrupted file."""
    path = Path(path)
    try:
        raw = path.read_bytes()
    except OSError as e:
        raise CheckpointError(f"cannot read {path}: {e.strerror or e}") from e
    if len(raw) < HEADER.size:
        raise CheckpointError(f"{path}: too short to be an EdgeScribe checkpoint ({len(raw)} bytes)")
    magic, version, length, digest = HEADER.unpack_from(raw)
    if magic != MAGIC:
        raise CheckpointError(f"{path}: not an EdgeScribe checkpoint (bad magic bytes)")
    if version > CONTAINER_VERSION:
        raise CheckpointError(f"{path}: container version {version} is newer than this EdgeScribe supports")
    body = raw[HEADER.size :]
    if len(body) != length:
        raise CheckpointError(f"{path}: truncated: {len(body)} of {length} payload bytes present")
    if hashlib.sha256(body).digest() != digest:
        raise CheckpointError(f"{path}: checksum mismatch: the file is corrupted")
    return body


# torch's storage classes, as its pickles name them, and the NumPy type of their raw bytes.
_STORAGES = {
    "FloatStorage": np.float32, "DoubleStorage": np.float64, "HalfStorage": np.float16,
    "LongStorage": np.int64, "IntStorage": np.int32, "ShortStorage": np.int16,
    "CharStorage": np.int8, "ByteStorage": np.uint8, "BoolStorage": np.bool_,
}


class _Storage:
    def __init__(self, dtype: type) -> None:
        self.dtype = np.dtype(dtype)


def _rebuild_tensor(storage: np.ndarray, offset: int, size: tuple, stride: tuple, *_ignored: Any) -> np.ndarray:
    """torch._utils._rebuild_tensor_v2, in NumPy: a strided view of the storage, copied out."""
    item = storage.itemsize
    if not size:
        return np.array(storage[offset])
    view = np.lib.stride_tricks.as_strided(storage[offset:], shape=tuple(size), strides=tuple(s * item for s in stride))
    return np.array(view)


class _ArrayUnpickler(pickle.Unpickler):
    def __init__(self, data: bytes, archive: zipfile.ZipFile, prefix: str) -> None:
        super().__init__(io.BytesIO(data))
        self.archive, self.prefix = archive, prefix

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) == ("torch._utils", "_rebuild_tensor_v2"):
            return _rebuild_tensor
        if module == "torch" and name in _STORAGES:
            return _Storage(_STORAGES[name])
        if (module, name) == ("collections", "OrderedDict"):
            return collections.OrderedDict
        raise pickle.UnpicklingError(f"{module}.{name} is not allowed in a model payload")

    def persistent_load(self, pid: Any) -> np.ndarray:
        if not (isinstance(pid, tuple) and len(pid) == 5 and pid[0] == "storage" and isinstance(pid[1], _Storage)):
            raise pickle.UnpicklingError(f"unexpected storage reference {pid!r}")
        _, storage, key, _location, numel = pid
        data = self.archive.read(f"{self.prefix}data/{key}")
        return np.frombuffer(data, dtype=storage.dtype, count=int(numel))


def read_arrays(body: bytes, origin: str = "payload") -> dict[str, Any]:
    """A ``torch.save`` payload as plain Python data with NumPy arrays in place of tensors."""
    try:
        with zipfile.ZipFile(io.BytesIO(body)) as archive:
            pkl = next(n for n in archive.namelist() if n.endswith("/data.pkl"))
            prefix = pkl[: -len("data.pkl")]
            if f"{prefix}byteorder" in archive.namelist() and archive.read(f"{prefix}byteorder") != b"little":
                raise CheckpointError(f"{origin}: written on a big-endian machine; load it with torch")
            return _ArrayUnpickler(archive.read(pkl), archive, prefix).load()
    except CheckpointError:
        raise
    except (zipfile.BadZipFile, StopIteration, KeyError, pickle.UnpicklingError, EOFError, ValueError, TypeError) as e:
        raise CheckpointError(f"{origin}: payload does not load without torch: {e}") from e


def read_model_arrays(path: str | os.PathLike | None = None) -> dict[str, Any]:
    """A model file's payload with NumPy arrays; ``None`` reads the default model embedded in the package."""
    path = DEFAULT_MODEL if path is None else Path(path)
    payload = read_arrays(read_body(path), str(path))
    if not isinstance(payload, dict) or payload.get("format") != "edgescribe-model":
        found = payload.get("format") if isinstance(payload, dict) else type(payload).__name__
        raise CheckpointError(f"{path}: not a model file (format={found!r})")
    return payload


def onnx_graph(payload: dict[str, Any], origin: str = "model") -> bytes | None:
    """The serialised ONNX graph of the streaming step a model payload carries, or None."""
    entry = payload.get("onnx")
    if entry is None:
        return None
    if entry.get("format") != ONNX_GRAPH_FORMAT or entry.get("format_version", 0) > ONNX_GRAPH_VERSION:
        raise CheckpointError(f"{origin}: ONNX graph {entry.get('format')!r} version {entry.get('format_version')} "
                              "is not one this EdgeScribe reads")
    if entry.get("compression") != "xz":
        raise CheckpointError(f"{origin}: unknown ONNX graph compression {entry.get('compression')!r}")
    try:
        return lzma.decompress(np.asarray(entry["graph"], dtype=np.uint8).tobytes())
    except lzma.LZMAError as e:
        raise CheckpointError(f"{origin}: ONNX graph does not decompress: {e}") from e
