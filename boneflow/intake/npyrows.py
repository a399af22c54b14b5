"""Row-wise access to standard .npy files through ordinary file I/O, not a memmap: pages touched
through a memmap count towards the process's resident set, page-cache pages written with write()
do not, so the parent's peak RSS stays flat however many images there are.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np


def create_npy(path: Path, shape: tuple[int, ...], dtype) -> None:
    """A zero-filled (sparse) .npy file of `shape`."""
    np.lib.format.open_memmap(path, mode="w+", dtype=dtype, shape=shape).flush()  # header written, data sparse


class NpyRows:
    """Open an existing C-ordered .npy file for row writes (`mode="r+b"`) or reads (`"rb"`)."""

    def __init__(self, path: Path, *, mode: str = "r+b"):
        self.path = Path(path)
        self._fh = open(self.path, mode)  # noqa: SIM115 held for the object's life; close() releases it
        major, _ = np.lib.format.read_magic(self._fh)
        reader = np.lib.format.read_array_header_1_0 if major == 1 else np.lib.format.read_array_header_2_0
        self.shape, fortran, self.dtype = reader(self._fh)
        self.offset = self._fh.tell()  # the data follows the header
        if fortran:
            raise ValueError(f"{self.path}: Fortran-ordered arrays are not supported")
        self.row_bytes = int(np.prod(self.shape[1:], dtype=np.int64)) * self.dtype.itemsize

    def write_row(self, index: int, row: np.ndarray) -> None:
        data = np.ascontiguousarray(row, dtype=self.dtype).tobytes()
        if len(data) != self.row_bytes:
            raise ValueError(f"{self.path}: row of {len(data)} bytes, expected {self.row_bytes}")
        self._fh.seek(self.offset + index * self.row_bytes)
        self._fh.write(data)

    def read_row(self, index: int) -> np.ndarray:
        self._fh.seek(self.offset + index * self.row_bytes)
        data = self._fh.read(self.row_bytes)
        return np.frombuffer(data, dtype=self.dtype).reshape(self.shape[1:])

    def close(self) -> None:
        self._fh.close()

    def __enter__(self) -> NpyRows:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def copy_rows(src: Path, dst: Path, rows: Sequence[int]) -> None:
    """A new .npy `dst` holding rows `rows` of the .npy `src`, in that order."""
    with NpyRows(src, mode="rb") as source:
        create_npy(dst, (len(rows), *source.shape[1:]), source.dtype)
        with NpyRows(dst) as out:
            for i, row in enumerate(rows):
                out.write_row(i, source.read_row(row))
