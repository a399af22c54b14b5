"""sha256 of files and bytes: the one implementation behind dataset fingerprints, packed-data
and run manifests, and the pretrained-weights check. Standard library only (the GPU script
imports the model code, which uses it)."""

from __future__ import annotations

import hashlib
from pathlib import Path

CHUNK = 1 << 20  # read files in 1 MiB blocks: flat memory for multi-GB files


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(CHUNK):
            digest.update(block)
    return digest.hexdigest()


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()
