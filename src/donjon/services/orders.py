"""Orders (spec §6): generation at provisioning time, processed asynchronously by DB-claimed workers.

``POST /v1/orders`` only validates and queues (202). An ``OrderProcessor`` running in a worker generates the
key material, stores the secrets (and the rsa/ec container of a key pair) and marks the order ACTIVE in one
transaction fenced on its claim, so each order takes effect exactly once even with several nodes, and an
order queued before a crash is processed after the restart.

Types: ``key`` and ``asymmetric`` as in Barbican, plus donjon's ``password`` (a generated passphrase
secret from a character policy). Password orders are hidden from order lists unless asked for with
``?type=password``: python-barbicanclient raises on order types it does not know.
"""

from __future__ import annotations

import json
import logging
import uuid
from typing import Any

from donjon.auth import Caller
from donjon.crypto import generation
from donjon.crypto.envelope import open_order_params, seal_order_params
from donjon.errors import InvalidInput, NotFound
from donjon.observability import metrics
from donjon.policy import Policy, Target
from donjon.services import payloads
from donjon.services.base import Service
from donjon.services.commands import NewOrder, NewSecret
from donjon.services.payload_store import PayloadStore
from donjon.services.project_keys import KekRetired, ProjectKeys
from donjon.services.quotas import Quotas
from donjon.services.sealing import new_secret_record
from donjon.services.stores import SecretStoreService
from donjon.storage import containers as container_repo
from donjon.storage import orders as repo
from donjon.storage import secrets as secret_repo
from donjon.storage.database import Database

# Re-exported (``as``): the API renders the orders this service returns.
from donjon.storage.orders import ACTIVE as ACTIVE
from donjon.storage.orders import OrderRecord as OrderRecord
from donjon.storage.records import SecretRecord
from donjon.stores import DATABASE
from donjon.timeutil import SYSTEM_CLOCK, Clock

log = logging.getLogger("donjon.orders")

BARBICAN_TYPES = ("key", "asymmetric")
TYPES = (*BARBICAN_TYPES, "password")


# The character classes of a password order (donjon extension).
PASSWORD_CLASSES = tuple(generation.CHARACTER_CLASSES)


def check_password_policy(length: int, classes: tuple[str, ...], exclude: str) -> None:
    """400 for a password policy no password can satisfy (every character of a class excluded)."""
    try:
        generation.PasswordPolicy(length=length, classes=classes, exclude=exclude).alphabets()
    except generation.UnsupportedGeneration as exc:
        raise InvalidInput(f"Provided field value is not supported: {exc}") from None


class OrderService(Service):
    def __init__(
        self, db: Database, keys: ProjectKeys, policy: Policy, quotas: Quotas, *, clock: Clock = SYSTEM_CLOCK
    ) -> None:
        super().__init__(db, policy, clock=clock)
        self._keys = keys
        self._quotas = quotas

    def create(self, caller: Caller, order: NewOrder) -> str:
        self._policy.enforce("orders:post", caller, operation="Order creation")
        return self._keys.retry_if_retired(lambda: self._create(caller, order))

    def _create(self, caller: Caller, order: NewOrder) -> str:
        order_id = str(uuid.uuid4())
        kek_id = sealed = None
        if order.passphrase is not None:
            kek = self._keys.active(caller.project_id)
            kek_id = kek.id
            params = json.dumps({"passphrase": order.passphrase}).encode()
            sealed = seal_order_params(kek.key, params, order_id=order_id, project_id=caller.project_id)
        with self._db.write() as conn:
            self._quotas.check(conn, caller.project_id, "orders", repo.count_orders)
            if kek_id is not None:
                self._keys.hold(conn, caller.project_id, kek_id)
            repo.insert_order(
                conn,
                order_id=order_id,
                project_id=caller.project_id,
                type_=order.type,
                meta=order.meta,
                creator_id=caller.user_id,
                now=self._clock.now(),
                kek_id=kek_id,
                sealed_params=sealed,
            )
        metrics.ORDERS_QUEUED.inc()
        return order_id

    def _find(self, caller: Caller, order_id: str, rule: str, operation: str) -> repo.OrderRecord:
        with self._db.read() as conn:
            record = repo.get_order(conn, caller.project_id, order_id)
        # Orders are looked up in the caller's project only: another project's order is simply not found.
        if record is None:
            raise NotFound("Not Found. Sorry but your order is in another castle.")
        target = Target("order", record.project_id, record.creator_id)
        self._policy.enforce(rule, caller, target, operation=operation)
        return record

    def get(self, caller: Caller, order_id: str) -> repo.OrderRecord:
        return self._find(caller, order_id, "order:get", "Order retrieval")

    def delete(self, caller: Caller, order_id: str) -> None:
        self._find(caller, order_id, "order:delete", "Order deletion")
        with self._db.write() as conn:
            if not repo.delete_order(conn, caller.project_id, order_id):
                raise NotFound("Order not found.")

    def list_orders(
        self, caller: Caller, *, type_: str | None, meta_like: str | None, offset: int, limit: int
    ) -> tuple[list[repo.OrderRecord], int]:
        self._policy.enforce("orders:get", caller, operation="Order(s) retrieval")
        types = [type_] if type_ in TYPES else list(BARBICAN_TYPES)
        with self._db.read() as conn:
            return repo.list_orders(
                conn, caller.project_id, types=types, meta_like=meta_like, offset=offset, limit=limit
            )


class OrderProcessor:
    """Does the work of one claimed order. Used by ``donjon.workers.orders.OrderWorker``."""

    def __init__(
        self, db: Database, keys: ProjectKeys, stores: SecretStoreService | None = None, *, clock: Clock = SYSTEM_CLOCK
    ) -> None:
        self._db = db
        self._clock = clock
        self._keys = keys
        self._stores = stores
        self._payloads = PayloadStore(keys, stores.registry if stores is not None else None)

    def process(self, order: repo.OrderRecord, worker: str) -> bool:
        """Generate, store and complete; False if the claim was lost (another worker owns the order)."""
        now = self._clock.now()
        try:
            secrets, container = self._generate(order)
        except generation.UnsupportedGeneration as exc:
            metrics.ORDERS_FAILED.labels("refused").inc()
            with self._db.write() as conn:
                return repo.fail(
                    conn,
                    order.id,
                    worker=worker,
                    now=now,
                    status_code=400,
                    reason=f"Process TypeOrder issue seen - {exc}.",
                )
        try:
            return self._store(order, worker, secrets, container)
        except KekRetired:
            # A KEK rotation retired the KEK the payloads were sealed under: generate afresh under the new one.
            secrets, container = self._generate(order)
            return self._store(order, worker, secrets, container)

    def _store(
        self,
        order: repo.OrderRecord,
        worker: str,
        secrets: list[SecretRecord],
        container: tuple[container_repo.ContainerRecord, list[container_repo.ContainerSecret]] | None,
    ) -> bool:
        now = self._clock.now()
        try:
            with self._db.write() as conn:
                for record in secrets:
                    self._payloads.hold(conn, record)
                    secret_repo.insert_secret(conn, record)
                if container is not None:
                    container_repo.insert_container(conn, *container)
                done = repo.finish(
                    conn,
                    order.id,
                    worker=worker,
                    now=now,
                    secret_id=secrets[0].id if order.type in ("key", "password") else None,
                    container_id=container[0].id if container is not None else None,
                )
                if not done:
                    # Roll back the secrets too: the worker that owns the order now will create them.
                    raise _ClaimLost
        except BaseException:
            for record in secrets:  # payloads put in an external store for rows that were not kept
                self._payloads.discard(record)
            raise
        metrics.ORDERS_COMPLETED.inc()
        return True

    def fail(self, order: repo.OrderRecord, worker: str) -> None:
        metrics.ORDERS_FAILED.labels("error").inc()
        with self._db.write() as conn:
            repo.fail(
                conn,
                order.id,
                worker=worker,
                now=self._clock.now(),
                status_code=500,
                reason="Process TypeOrder failure seen - please contact site administrator.",
            )

    def _new(self, order: repo.OrderRecord, new: NewSecret) -> SecretRecord:
        stores = self._stores
        return new_secret_record(
            self._payloads,
            new,
            project_id=order.project_id,
            creator_id=order.creator_id,
            now=self._clock.now(),
            store=stores.store_for_new(order.project_id) if stores is not None else DATABASE,
        )

    def _generate(
        self, order: repo.OrderRecord
    ) -> tuple[list[SecretRecord], tuple[container_repo.ContainerRecord, list[container_repo.ContainerSecret]] | None]:
        meta = order.meta
        expiration = meta.get("expiration")
        common: dict[str, Any] = {
            "name": meta.get("name"),
            "expiration": _parse_time(expiration) if expiration else None,
        }
        if order.type == "password":
            policy = generation.PasswordPolicy(
                length=meta["length"], classes=tuple(meta["character_classes"]), exclude=meta["exclude"]
            )
            value = generation.password(policy)
            secret = self._new(
                order, NewSecret(**common, secret_type="passphrase", content_type=payloads.TEXT, payload=value.encode())
            )
            return [secret], None
        algorithm, bits, mode = meta["algorithm"], int(meta["bit_length"]), meta.get("mode")
        attrs = {**common, "algorithm": algorithm, "bit_length": bits, "mode": mode}
        if order.type == "key":
            key = generation.symmetric_key(algorithm, bits, mode)
            content_type = payloads.normalize_content_type(meta.get("payload_content_type") or payloads.OCTET_STREAM)
            return [
                self._new(order, NewSecret(**attrs, secret_type="symmetric", content_type=content_type, payload=key))
            ], None
        passphrase = self._passphrase(order)
        pair = generation.key_pair(algorithm, bits, passphrase)
        private = self._new(
            order, NewSecret(**attrs, secret_type="private", content_type=payloads.PKCS8, payload=pair.private_pem)
        )
        public = self._new(
            order, NewSecret(**attrs, secret_type="public", content_type=payloads.OCTET_STREAM, payload=pair.public_pem)
        )
        refs = [
            container_repo.ContainerSecret("private_key", private.id),
            container_repo.ContainerSecret("public_key", public.id),
        ]
        secrets = [private, public]
        if passphrase is not None:
            pass_secret = self._new(
                order,
                NewSecret(**common, secret_type="passphrase", content_type=payloads.TEXT, payload=passphrase.encode()),
            )
            secrets.append(pass_secret)
            refs.append(container_repo.ContainerSecret("private_key_passphrase", pass_secret.id))
        now = self._clock.now()
        container = container_repo.ContainerRecord(
            id=str(uuid.uuid4()),
            project_id=order.project_id,
            name=meta.get("name"),
            type=algorithm.lower(),
            creator_id=order.creator_id,
            created_at=now,
            updated_at=now,
        )
        return secrets, (container, refs)

    def _passphrase(self, order: repo.OrderRecord) -> str | None:
        if order.sealed_params is None or order.kek_id is None:
            return None
        kek = self._keys.get(order.project_id, order.kek_id)
        params = json.loads(open_order_params(kek, order.sealed_params, order_id=order.id, project_id=order.project_id))
        value = params.get("passphrase")
        return str(value) if value is not None else None


class _ClaimLost(Exception):
    """Raised inside the completing transaction to roll it back."""


ClaimLost = _ClaimLost


def _parse_time(value: str) -> Any:
    from donjon.timeutil import parse_iso8601

    return parse_iso8601(value)
