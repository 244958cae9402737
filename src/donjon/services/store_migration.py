"""Moving payloads from one secret store to another (``donjon manage migrate-store``), online and resumable.

Each secret moves on its own: its payload is read from where its row points, written to the target, and the
row is switched with a compare-and-set; only then is the source object destroyed. A secret changed or deleted
meanwhile is left as it is (its new object in the target is destroyed). An interruption leaves every secret
either moved or not, at worst one target object without a row, and running the command again continues.
Secrets with ``max_reads`` or earlier versions stay in the database store (their lifecycle needs it).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from donjon.errors import ConfigurationError
from donjon.services.payload_store import PayloadStore
from donjon.services.project_keys import ProjectKeys
from donjon.services.stores import StoreRegistry
from donjon.storage import store_moves
from donjon.storage.database import Database
from donjon.storage.records import SecretRecord
from donjon.stores import DATABASE


@dataclass
class MoveReport:
    moved: int = 0
    skipped: list[str] = field(default_factory=list)  # secret ids left where they are, with a reason below
    reasons: dict[str, str] = field(default_factory=dict)


def _column(store: str) -> str | None:
    """A store's name as the secrets table's ``store`` column has it: NULL for the database store."""
    return None if store == DATABASE else store


class StoreMigration:
    def __init__(self, db: Database, keys: ProjectKeys, registry: StoreRegistry, *, batch: int = 100) -> None:
        self._db = db
        self._payloads = PayloadStore(keys, registry)
        self._batch = batch

    def pending(self, source: str, project_id: str | None) -> int:
        with self._db.read() as conn:
            return store_moves.count_in_store(conn, _column(source), project_id)

    def run(
        self,
        source: str,
        target: str,
        project_id: str | None = None,
        on_progress: Callable[[int], None] = lambda n: None,
    ) -> MoveReport:
        for name in (source, target):
            self._payloads.store(name)  # Unavailable if not configured
        if source == target:
            raise ConfigurationError("the source and target stores are the same")
        report = MoveReport()
        last = ""
        while True:
            with self._db.read() as conn:
                batch = store_moves.secrets_in_store(conn, _column(source), project_id, after=last, limit=self._batch)
            if not batch:
                return report
            for record in batch:
                self._payloads.retry_if_retired(lambda: self._move(record, target, report))  # noqa: B023 (called now)
                on_progress(1)
            last = batch[-1].id

    def _move(self, record: SecretRecord, target: str, report: MoveReport) -> None:
        if target != DATABASE and (record.max_reads is not None or record.version != 1):
            report.skipped.append(record.id)
            report.reasons[record.id] = "limited or versioned secrets stay in the database store"
            return
        moved = self._payloads.put(record, target, self._payloads.read(record))
        try:
            with self._db.write() as conn:
                self._payloads.hold(conn, moved)
                switched = store_moves.move(conn, record, moved)
        except BaseException:
            self._payloads.discard(moved)
            raise
        if not switched:
            self._payloads.discard(moved)
            report.skipped.append(record.id)
            report.reasons[record.id] = "changed or deleted during the move"
            return
        self._payloads.discard(record)  # the source object, now that no row points at it
        report.moved += 1
