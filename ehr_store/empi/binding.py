"""Find the EMPI index of the unit of work a `ResourceRepository` belongs to.

The ingestion hook receives only the repository; the EMPI tables must be written in the
same transaction. Both store implementations keep their unit of work on the repository
(`_uow`): the SQL one offers `connection(write=...)`, the memory one `state` and `journal`.
This is the one place that relies on that (inside `ehr_store`).

May import: the standard library, `ehr_store.errors`, `ehr_store.empi.{index,sql_index,memory_index}`.
"""

from __future__ import annotations

from typing import Any

from ehr_store.empi.index import EmpiIndex
from ehr_store.empi.memory_index import MemoryEmpiIndex, MemoryEmpiState
from ehr_store.empi.sql_index import SqlEmpiIndex
from ehr_store.errors import NotSupported


def empi_index_for(repo: Any) -> EmpiIndex:
    """The `EmpiIndex` writing in the same unit of work as `repo`.

    Raises: NotSupported (a repository of neither store).
    """
    uow = getattr(repo, "_uow", None)
    if uow is not None and callable(getattr(uow, "connection", None)):
        return SqlEmpiIndex(uow)
    if uow is not None and hasattr(uow, "state") and hasattr(uow, "journal"):
        state = uow.state
        empi = getattr(state, "empi", None)
        if empi is None:
            with state.lock:
                empi = getattr(state, "empi", None) or MemoryEmpiState()
                state.empi = empi
        return MemoryEmpiIndex(empi, uow.journal)
    raise NotSupported("this repository has no EMPI index")
