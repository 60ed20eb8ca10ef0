"""The files of a saved model, read defensively: a damaged or missing part is an error that
names the file and says what to do, never a silent wrong answer or a trip to the hub."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

CHECKSUMS_NAME = "checksums.json"
WEIGHT_SUFFIXES = (".safetensors", ".bin", ".model")  # tensors and SentencePiece models


def read_json(path: Path, *, what: str) -> Any:
    """JSON from ``path``; ``what`` says what the file is, for the error message."""
    if not path.is_file():
        raise FileNotFoundError(f"{str(path)!r} ({what}) is missing. Copy the whole saved folder again.")
    try:
        return json.loads(path.read_text(encoding="utf8"))
    except (ValueError, UnicodeDecodeError) as error:
        raise ValueError(f"{str(path)!r} ({what}) is not valid JSON ({error}). Restore it from the original.") from None


def require(path: Path, *, what: str) -> Path:
    """``path`` itself, or an error naming it when it is missing."""
    if not path.exists():
        raise FileNotFoundError(f"{str(path)!r} ({what}) is missing. Copy the whole saved folder again.")
    return path


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def weight_files(root: Path) -> Iterable[Path]:
    return sorted(p for p in root.rglob("*") if p.is_file() and p.suffix in WEIGHT_SUFFIXES)


def write_checksums(root: Path) -> None:
    """Record the SHA-256 of every weight file under ``root`` (in ``checksums.json``)."""
    sums = {str(p.relative_to(root)): sha256(p) for p in weight_files(root)}
    (root / CHECKSUMS_NAME).write_text(json.dumps(sums, indent=1, sort_keys=True), encoding="utf8")


def verify_checksums(root: Path) -> None:
    """Check every recorded weight file; folders saved before checksums existed pass as they are."""
    recorded = root / CHECKSUMS_NAME
    if not recorded.is_file():
        return
    for name, expected in read_json(recorded, what="the weight files' SHA-256").items():
        path = require(root / name, what="a weight file")
        if sha256(path) != expected:
            raise ValueError(
                f"{str(path)!r} is damaged: its SHA-256 differs from the one recorded when it was saved. "
                f"Copy the saved folder again, or retrain."
            )
