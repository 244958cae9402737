"""Purge a project's data when Keystone deletes the project: ``donjon manage keystone-listener``.

Keystone publishes ``identity.project.deleted`` on its notification transport. This listener consumes it
(oslo.messaging, in a pool so that several listeners share the work) and crypto-shreds the project as
``donjon manage purge-project`` does: KEKs first, then external objects, then rows. Barbican's listener only
soft-deletes the rows and leaves the ciphertext and the backends' objects behind.

A message is acknowledged only once its purge has committed; a failed purge is requeued (when allowed), and
a purge of a project that has nothing left is a no-op, so a redelivered notification does no harm.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping
from typing import Any

from donjon.config import KeystoneNotificationsConfig
from donjon.errors import ConfigurationError

log = logging.getLogger("donjon.keystone_listener")

PROJECT_DELETED = "identity.project.deleted"
# oslo_messaging.NotificationResult's values, spelled out so that this module imports without oslo.messaging.
HANDLED = "handled"
REQUEUE = "requeue"

Purge = Callable[[str], Mapping[str, int]]


def deleted_project_id(payload: Any) -> str | None:
    """The project id of an ``identity.project.deleted`` payload, in Keystone's basic or CADF format."""
    if not isinstance(payload, Mapping):
        return None
    resource = payload.get("resource_info")  # basic format; Keystone adds it to CADF payloads too
    if isinstance(resource, str) and resource:
        return resource
    target = payload.get("target")
    if isinstance(target, Mapping) and isinstance(target.get("id"), str) and target["id"]:
        return str(target["id"])
    return None


class ProjectDeletedEndpoint:
    """The oslo.messaging notification endpoint: ``info`` is called for each ``info``-priority notification."""

    filter_rule: Any = None  # an oslo_messaging.NotificationFilter, set by listen()

    def __init__(self, purge: Purge, *, allow_requeue: bool) -> None:
        self._purge = purge
        self._requeue = allow_requeue

    def info(self, ctxt: Any, publisher_id: str, event_type: str, payload: Any, metadata: Any) -> str:
        if event_type != PROJECT_DELETED:
            return HANDLED
        project_id = deleted_project_id(payload)
        if project_id is None:
            log.warning("%s from %s without a project id: ignored", event_type, publisher_id)
            return HANDLED
        try:
            counts = self._purge(project_id)
        except Exception as exc:  # noqa: BLE001 - any failure leaves the message for a later attempt
            log.error("purge of project %s failed (%s): %s", project_id, type(exc).__name__, _safe(exc))
            return REQUEUE if self._requeue else HANDLED
        summary = ", ".join(f"{n} {name}" for name, n in counts.items() if n) or "nothing left"
        log.info("project %s deleted in Keystone: purged (%s)", project_id, summary)
        return HANDLED


def _safe(exc: Exception) -> str:
    # Domain errors carry a message written for display; anything else is named by its type only.
    message = getattr(exc, "message", None)
    return message if isinstance(message, str) else "see the exception type"


def listen(
    config: KeystoneNotificationsConfig, purge: Purge, stop: threading.Event, on_ready: Callable[[str], None]
) -> None:
    """Consume Keystone's notifications until ``stop`` is set; ``on_ready`` is told what is listened to."""
    if config.transport_url is None:
        raise ConfigurationError("keystone_notifications.transport_url is not set (Keystone's notification transport)")
    try:
        import oslo_messaging
        from oslo_config import cfg
    except ImportError:
        raise ConfigurationError("the Keystone listener needs oslo.messaging: pip install 'donjon[audit]'") from None

    conf = cfg.ConfigOpts()
    conf([], project="donjon", default_config_files=[], default_config_dirs=[])
    transport = oslo_messaging.get_notification_transport(conf, url=config.transport_url.get_secret_value())
    endpoint = ProjectDeletedEndpoint(purge, allow_requeue=config.allow_requeue)
    # Only project deletions reach the endpoint; the rest of Keystone's traffic is acknowledged unread.
    endpoint.filter_rule = oslo_messaging.NotificationFilter(event_type=r"^identity\.project\.deleted$")
    listener = oslo_messaging.get_notification_listener(
        transport,
        [oslo_messaging.Target(exchange=config.exchange, topic=config.topic)],
        [endpoint],
        executor="threading",
        pool=config.pool,
        allow_requeue=config.allow_requeue,
    )
    try:
        listener.start()
        on_ready(f"exchange {config.exchange!r}, topic {config.topic!r}, pool {config.pool!r}")
        stop.wait()
    finally:
        listener.stop()
        listener.wait()
        transport.cleanup()
