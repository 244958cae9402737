"""Real components the tests run against (Keystone, Barbican, KMIP, OpenBao, SoftHSM2, NSS, PostgreSQL)."""

from __future__ import annotations

import os

NO_RABBITMQ = "needs RabbitMQ, and DONJON_TEST_RABBITMQ=0 (scripts/test with DONJON_TEST_DATABASES=sqlite)"


def rabbitmq_wanted() -> bool:
    """False on scripts/test's DONJON_TEST_DATABASES=sqlite fast path, which starts no RabbitMQ."""
    return os.environ.get("DONJON_TEST_RABBITMQ", "1") != "0"
