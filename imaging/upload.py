"""Upload DICOM files and folders to Orthanc (`hie imaging upload PATH...`).

`dicom_files(paths)` expands folders (recursively, sorted) into files; `upload_files(client,
files, progress)` checks each file with pydicom (so a non-DICOM file gets a clear reason) and
POSTs it to Orthanc's `/instances`, a few at a time. A bad file never stops the others: the
report lists it with its reason. The bridge indexes what arrives through `/changes`.

May import: pydicom, `ehr_store` (error kinds), `imaging.*`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

from ehr_store import DomainError, Unavailable
from imaging.charset import read_dataset
from imaging.orthanc import OrthancClient


@dataclass
class UploadReport:
    """Counts and the studies touched; `failed` is `[(path, reason)]`."""

    stored: int = 0
    already: int = 0
    failed: list[tuple[Path, str]] = field(default_factory=list)
    studies: set[str] = field(default_factory=set)
    bytes: int = 0


def dicom_files(paths: Iterable[Path]) -> list[Path]:
    """Files under `paths` (folders recursively, hidden files skipped), in a stable order."""
    out: list[Path] = []
    for path in paths:
        if path.is_dir():
            out += sorted(p for p in path.rglob("*") if p.is_file() and not p.name.startswith("."))
        else:
            out.append(path)
    return out


async def upload_files(
    client: OrthancClient,
    files: list[Path],
    progress: Callable[[Path], None] | None = None,
    concurrency: int = 4,
) -> UploadReport:
    """Upload `files`; `progress(path)` is called after each. Never raises for a bad file;
    Raises: Unavailable when Orthanc cannot be reached at all (first failure stops the run)."""
    report = UploadReport()
    queue: asyncio.Queue[Path] = asyncio.Queue()
    for f in files:
        queue.put_nowait(f)

    async def one(path: Path) -> None:
        try:
            data = await asyncio.to_thread(path.read_bytes)
            ds = read_dataset(data, stop_before_pixels=True)
            answer = await client.upload(data)
        except OSError as exc:
            report.failed.append((path, exc.strerror or str(exc)))
            return
        except Unavailable:
            raise
        except DomainError as exc:
            report.failed.append((path, exc.diagnostics))
            return
        report.bytes += len(data)
        report.studies.add(str(ds.get("StudyInstanceUID", "")))
        if answer.get("Status") == "AlreadyStored":
            report.already += 1
        else:
            report.stored += 1

    async def worker() -> None:
        while not queue.empty():
            path = queue.get_nowait()
            await one(path)
            if progress is not None:
                progress(path)

    await asyncio.gather(*(worker() for _ in range(max(1, min(concurrency, len(files))))))
    return report
