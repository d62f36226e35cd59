"""NDJSON output files of one export job: one series per resource type, split by size.

Each resource is written as its stored JSON bytes plus `\\n` (never re-serialised), straight
to disk through a 1 MiB buffer, or a gzip stream (`compresslevel` 3) when asked. Names:
`<Type>-<n>.ndjson` or `<Type>-<n>.ndjson.gz` inside the job's directory.

May import: the standard library.
"""

from __future__ import annotations

import gzip
import re
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

FILE_NAME = re.compile(r"^[A-Z][A-Za-z]+-\d+\.ndjson(\.gz)?$")


@dataclass
class OutputFile:
    """One finished file: resource type, file name, number of resources."""

    type: str
    name: str
    count: int


class TypeWriter:
    """Writes the resources of one type into `<Type>-1.ndjson`, `<Type>-2.ndjson`, ..."""

    def __init__(self, directory: Path, resource_type: str, *, compress: bool, max_resources: int) -> None:
        self.directory = directory
        self.type = resource_type
        self.compress = compress
        self.max_resources = max_resources
        self.files: list[OutputFile] = []
        self._out: BinaryIO | None = None
        self._count = 0

    def _open(self) -> BinaryIO:
        name = f"{self.type}-{len(self.files) + 1}.ndjson" + (".gz" if self.compress else "")
        self.files.append(OutputFile(self.type, name, 0))
        path = self.directory / name
        if self.compress:
            return gzip.open(path, "wb", compresslevel=3)  # type: ignore[return-value]
        return open(path, "wb", buffering=1 << 20)

    def write(self, content: bytes) -> None:
        """Append one resource (stored JSON bytes, no newline inside)."""
        if self._out is None or self._count >= self.max_resources:
            self.close()
            self._out = self._open()
            self._count = 0
        self._out.write(content)
        self._out.write(b"\n")
        self._count += 1
        self.files[-1].count = self._count

    def close(self) -> None:
        """Flush and close the current file."""
        if self._out is not None:
            self._out.close()
            self._out = None

    @property
    def total(self) -> int:
        """Resources written so far."""
        return sum(f.count for f in self.files)


def job_directory(root: Path, job_id: str) -> Path:
    """`root/job_id`, created."""
    path = root / job_id
    path.mkdir(parents=True, exist_ok=True)
    return path


def remove_job_files(root: Path, job_id: str) -> None:
    """Delete a job's directory (nothing when absent)."""
    shutil.rmtree(root / job_id, ignore_errors=True)
