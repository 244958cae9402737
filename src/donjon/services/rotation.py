"""Online rotation of the root of trust and of project KEKs, while servers keep serving.

Root rotation rewraps each KEK under the current root key, one compare-and-set per KEK: the KEK's bytes do
not change, so payloads are untouched and the servers' cached KEKs stay valid; a server that reads a KEK
mid-rotation unwraps it under whichever root holds it then (the keystore chain, or the file keystore's
re-read of its key file).

KEK rotation makes a new KEK the project's active one, then re-seals the project's payloads (and sealed
order parameters) from the old KEKs to the new one in batches, each row swapped only if unchanged. Servers
keep sealing with the old KEK until their KEK cache expires, so a last pass runs after that delay, and an
old KEK is deleted only once no row needs it. Any step can be interrupted and run again.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Connection
from sqlalchemy.exc import IntegrityError

from donjon.crypto import DecryptionFailed
from donjon.crypto.envelope import (
    kek_context,
    new_kek,
    open_order_params,
    seal_order_params,
)
from donjon.keystores import Keystore
from donjon.storage import keks, reencrypt
from donjon.storage.database import Database
from donjon.stores.database import reseal
from donjon.timeutil import utcnow

Progress = Callable[[int], None]
# (conn, project_id, kek_id, limit) -> rows sealed under that KEK: one of the reencrypt.*_sealed_under queries.
SealedUnder = Callable[[Connection, str, str, int], Sequence[Any]]


def _ignore(_: int) -> None:
    pass


@dataclass
class RootReport:
    root_key_id: str
    rewrapped: int = 0
    unreadable: list[str] = field(default_factory=list)  # KEK ids no configured keystore could unwrap
    remaining: int = 0  # KEKs still under another root after the pass (created meanwhile, or unreadable)


class RootRotation:
    def __init__(self, db: Database, keystore: Keystore, *, batch: int = 200) -> None:
        self._db = db
        self._keystore = keystore
        self._batch = batch

    def remaining(self) -> int:
        current = self._keystore.root_key_id()
        with self._db.read() as conn:
            return sum(n for root, n in keks.count_by_root(conn).items() if root != current)

    def run(self, on_progress: Progress = _ignore) -> RootReport:
        current = self._keystore.root_key_id()
        report = RootReport(current)
        last = ""
        while True:
            with self._db.read() as conn:
                ids = keks.ids_not_under(conn, current, self._batch, after=last)
            if not ids:
                break
            for kek_id in ids:
                if self._rewrap(kek_id, current, report):
                    report.rewrapped += 1
                on_progress(1)
            last = ids[-1]
        report.remaining = self.remaining()
        return report

    def _rewrap(self, kek_id: str, current: str, report: RootReport) -> bool:
        with self._db.read() as conn:
            row = keks.get_row(conn, kek_id)
        if row is None or row[1].root_key_id == current:
            return False
        project_id, old = row
        context = kek_context(kek_id=kek_id, project_id=project_id)
        try:
            key = self._keystore.unwrap(old, context)
        except DecryptionFailed:
            report.unreadable.append(kek_id)
            return False
        new = self._keystore.wrap(key, context)
        with self._db.write() as conn:
            return keks.replace_wrap(conn, kek_id, old, new)


@dataclass
class KekReport:
    project_id: str
    new_kek_id: str | None = None
    resealed: int = 0
    retired: list[str] = field(default_factory=list)
    still_referenced: dict[str, int] = field(default_factory=dict)  # old KEK id -> rows that still need it


class KekRotation:
    def __init__(self, db: Database, keystore: Keystore, *, batch: int = 200) -> None:
        self._db = db
        self._keystore = keystore
        self._batch = batch

    def rotate(
        self,
        project_id: str,
        *,
        settle_seconds: float,
        on_progress: Progress = _ignore,
        sleep: Callable[[float], None] = time.sleep,
        new_key: bool = True,
    ) -> KekReport:
        """New active KEK (unless ``new_key`` is False: finish an earlier run), re-seal, wait, re-seal, retire."""
        report = KekReport(project_id)
        switched_at = time.monotonic()
        if new_key:
            report.new_kek_id = self._activate_new(project_id)
        with self._db.read() as conn:
            active = keks.active_id(conn, project_id)
        if active is None:
            return report  # the project has never stored anything
        self._reseal_all(project_id, active, report, on_progress)
        # Servers seal with the KEK they cached as active until that cache entry expires: wait it out, then
        # catch what they wrote meanwhile.
        wait = settle_seconds - (time.monotonic() - switched_at) if new_key else 0.0
        if wait > 0:
            sleep(wait)
            self._reseal_all(project_id, active, report, on_progress)
        self._retire(project_id, report)
        return report

    def _activate_new(self, project_id: str) -> str:
        kek_id = str(uuid.uuid4())
        wrapped = self._keystore.wrap(new_kek(), kek_context(kek_id=kek_id, project_id=project_id))
        with self._db.write() as conn:
            keks.add_and_activate(conn, kek_id=kek_id, project_id=project_id, wrapped=wrapped, now=utcnow())
        return kek_id

    def _unwrap(self, project_id: str, kek_id: str) -> bytes:
        with self._db.read() as conn:
            row = keks.get_row(conn, kek_id)
        if row is None:
            raise LookupError(f"KEK {kek_id} is missing")
        return self._keystore.unwrap(row[1], kek_context(kek_id=kek_id, project_id=project_id))

    def _reseal_all(self, project_id: str, active: str, report: KekReport, on_progress: Progress) -> None:
        new_key = self._unwrap(project_id, active)
        with self._db.read() as conn:
            old_ids = keks.inactive_ids(conn, project_id)
        for old_id in old_ids:
            old_key = self._unwrap(project_id, old_id)
            report.resealed += self._reseal_under(project_id, old_id, old_key, active, new_key, on_progress)

    def _reseal_under(
        self, project_id: str, old_id: str, old_key: bytes, new_id: str, new_key: bytes, on_progress: Progress
    ) -> int:
        """Everything of the project sealed under ``old_id``: payloads, order parameters, previous versions."""

        def reseal_secret(conn: Connection, row: Any) -> bool:
            secret_id, blob, version = row
            sealed = reseal(old_key, new_key, blob, secret_id=secret_id, project_id=project_id, version=version)
            return reencrypt.swap_secret(conn, secret_id, old_kek=old_id, old=blob, new_kek=new_id, new=sealed)

        def reseal_order(conn: Connection, row: Any) -> bool:
            order_id, blob = row
            params = open_order_params(old_key, blob, order_id=order_id, project_id=project_id)
            sealed = seal_order_params(new_key, params, order_id=order_id, project_id=project_id)
            return reencrypt.swap_order(conn, order_id, old_kek=old_id, old=blob, new_kek=new_id, new=sealed)

        def reseal_version(conn: Connection, row: Any) -> bool:
            # A previous version of a rotated secret (lifecycle extension), bound to its version number.
            secret_id, version, blob = row
            sealed = reseal(old_key, new_key, blob, secret_id=secret_id, project_id=project_id, version=version)
            return reencrypt.swap_version(
                conn, secret_id, version, old_kek=old_id, old=blob, new_kek=new_id, new=sealed
            )

        kinds: list[tuple[SealedUnder, Callable[[Connection, Any], bool]]] = [
            (reencrypt.secrets_sealed_under, reseal_secret),
            (reencrypt.orders_sealed_under, reseal_order),
            (reencrypt.versions_sealed_under, reseal_version),
        ]
        return sum(self._in_batches(find, project_id, old_id, reseal, on_progress) for find, reseal in kinds)

    def _in_batches(
        self,
        sealed_under: SealedUnder,
        project_id: str,
        old_id: str,
        reseal: Callable[[Connection, Any], bool],
        on_progress: Progress,
    ) -> int:
        """Re-seal the rows ``sealed_under`` finds, a batch per transaction, until none is left; the count swapped.

        A row changed since it was read (deleted, rotated by a writer) is skipped by its compare-and-set swap;
        a batch that swaps nothing ends the loop, so such rows cannot keep it spinning.
        """
        done = 0
        while True:
            with self._db.read() as conn:
                rows = sealed_under(conn, project_id, old_id, self._batch)
            swapped = 0
            with self._db.write() as conn:
                for row in rows:
                    if reseal(conn, row):
                        swapped += 1
            done += swapped
            on_progress(len(rows))
            if len(rows) < self._batch or swapped == 0:
                return done

    def _retire(self, project_id: str, report: KekReport) -> None:
        with self._db.read() as conn:
            old_ids = keks.inactive_ids(conn, project_id)
        for old_id in old_ids:
            with self._db.read() as conn:
                needed = reencrypt.references(conn, old_id)
            if needed:
                report.still_referenced[old_id] = needed
                continue
            try:
                with self._db.write() as conn:
                    keks.delete_kek(conn, old_id)
            except IntegrityError:
                # A row written after the count (or a table this pass does not re-seal) still needs it.
                report.still_referenced[old_id] = -1
                continue
            report.retired.append(old_id)

    def projects(self) -> list[str]:
        with self._db.read() as conn:
            return keks.projects(conn)
