"""JSONL manifests: one utterance a line, ``{"audio": PATH, "text": TEXT, "duration": SECONDS, ...}``.

``audio`` is relative to the manifest's folder (absolute paths are kept as they are). This is the
format of ``../shared/data`` and of every importer and the synthetic-corpus tool.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class Utterance:
    audio: Path  # resolved path
    text: str
    duration: float
    extra: dict[str, Any] = field(default_factory=dict, compare=False)


class ManifestError(ValueError):
    pass


def parse_manifest_arg(arg: str) -> tuple[Path, float]:
    """``a.jsonl`` or ``a.jsonl:2`` (oversample a manifest by a weight) -> (path, weight)."""
    path, sep, weight = arg.rpartition(":")
    if sep and path and not os.path.exists(arg):
        try:
            w = float(weight)
        except ValueError as e:
            raise ManifestError(f"bad manifest weight in {arg!r}: use PATH or PATH:WEIGHT") from e
        if w <= 0:
            raise ManifestError(f"manifest weight must be positive in {arg!r}")
        return Path(path), w
    return Path(arg), 1.0


def read_manifest(path: str | os.PathLike) -> Iterator[Utterance]:
    path = Path(path)
    base = path.parent
    try:
        f = path.open(encoding="utf-8")
    except OSError as e:
        raise ManifestError(f"cannot read manifest {path}: {e.strerror or e}") from e
    with f:
        for n, line in enumerate(f, start=1):
            line = line.strip()
            if not line:
                continue
            try:
                row = json.loads(line)
                audio, text, duration = row.pop("audio"), row.pop("text"), float(row.pop("duration"))
            except (json.JSONDecodeError, KeyError, TypeError, ValueError) as e:
                raise ManifestError(f"{path}:{n}: not a manifest line ({e})") from e
            yield Utterance(base / audio, str(text), duration, row)


def write_manifest(path: str | os.PathLike, rows: Iterable[dict[str, Any]]) -> int:
    """Write rows (with ``audio`` already relative to the manifest's folder) atomically; returns count."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    n = 0
    with tmp.open("w", encoding="utf-8") as f:
        for row in rows:
            f.write(json.dumps(row, ensure_ascii=False) + "\n")
            n += 1
    os.replace(tmp, path)
    return n
