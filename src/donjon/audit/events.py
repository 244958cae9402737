"""CADF events (in pycadf's shape) for API requests, built from what the request *is*, never from what it carries.

An event is derived only from the HTTP method, the matched route template, its path parameters, the
response status, the request id and the authenticated :class:`~donjon.auth.Caller`. Bodies, query strings,
headers and tokens never reach this module, so no payload, passphrase, token or key can end up in a record.
"""

from __future__ import annotations

import functools
import socket
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from pycadf import cadftaxonomy as taxonomy
from pycadf import cadftype
from pycadf import event as cadf_event

from donjon.auth import Caller
from donjon.ids import uuid4_text

UNKNOWN = taxonomy.UNKNOWN
_EVENT_TYPE_URI = cadf_event.TYPE_URI_EVENT
_ACTIVITY = cadftype.EVENTTYPE_ACTIVITY
_ACCOUNT_USER = taxonomy.ACCOUNT_USER
_SERVICE_KEYMGR = taxonomy.SERVICE_KEYMGR
# One observer id per node: stable across restarts of the same host.
OBSERVER_ID = str(uuid.uuid5(uuid.NAMESPACE_DNS, f"donjon.{socket.gethostname()}"))

# Path segments (after /v1) and the CADF type each names; ids between them are the resources' ids.
_SEGMENT_TYPES = {
    "secrets": "secret",
    "containers": "container",
    "orders": "order",
    "consumers": "consumer",
    "metadata": "metadata",
    "acl": "acl",
    "payload": "payload",
    "quotas": "quota",
    "project-quotas": "project-quota",
    "secret-stores": "secret-store",
    "transport_keys": "transport-key",
}
# A GET on these (no id after them) lists a collection.
_COLLECTIONS = {"secrets", "containers", "orders", "consumers", "project-quotas", "secret-stores", "transport_keys"}
_ACTIONS = {
    "POST": taxonomy.ACTION_CREATE,
    "PUT": taxonomy.ACTION_UPDATE,
    "PATCH": taxonomy.ACTION_UPDATE,
    "DELETE": taxonomy.ACTION_DELETE,
    "GET": taxonomy.ACTION_READ,
    "HEAD": taxonomy.ACTION_READ,
}
_MAX_PATH = 256


@dataclass(frozen=True)
class Target:
    """What a request acts on: CADF type, the resource's id, and the request's path (no query string)."""

    type_uri: str
    resource_id: str
    path: str
    action: str


def target_of(method: str, template: str | None, path_params: Mapping[str, Any], path: str) -> Target:
    """The target and action of a request to ``path``, matched to route ``template`` (None: no route)."""
    if template is None:
        return Target(UNKNOWN, UNKNOWN, path[:_MAX_PATH], _ACTIONS.get(method, UNKNOWN))
    type_uri, action, id_names = _route_target(method, template)
    resource_id = ""
    for name in id_names:
        # The outermost id names the resource (the secret of /v1/secrets/{id}/metadata/{key}).
        resource_id = str(path_params.get(name, ""))
        if resource_id:
            break
    return Target(type_uri, resource_id or UNKNOWN, path[:_MAX_PATH], action)


@functools.lru_cache(maxsize=1024)  # route templates times methods: a few hundred at most
def _route_target(method: str, template: str) -> tuple[str, str, tuple[str, ...]]:
    """A route's CADF type and the action of ``method`` on it, and the names of its path parameters in order."""
    kinds: list[str] = []
    id_names: list[str] = []
    last_literal = ""
    for part in template.split("/"):
        if not part or part == "v1":
            continue
        if part.startswith("{"):
            id_names.append(part[1:-1].split(":", 1)[0])
            last_literal = ""
        else:
            kinds.append(_SEGMENT_TYPES.get(part, part))
            last_literal = part
    type_uri = "/".join([taxonomy.KEYMGR_OTHERS, *kinds])
    action = _ACTIONS.get(method, UNKNOWN)
    if action == taxonomy.ACTION_READ and last_literal in _COLLECTIONS:
        action = taxonomy.ACTION_LIST
    return type_uri, action, tuple(id_names)


def outcome_of(status: int | None) -> str:
    """success for 1xx-3xx, failure for 4xx/5xx; pending before there is a status."""
    if status is None:
        return str(taxonomy.OUTCOME_PENDING)
    return str(taxonomy.OUTCOME_SUCCESS if status < 400 else taxonomy.OUTCOME_FAILURE)


def build_event(
    target: Target, caller: Caller | None, status: int | None, request_id: str, observer_name: str = "donjon"
) -> dict[str, Any]:
    """The CADF event (as a JSON-ready dict) of one request; ``status`` None is the pending event.

    The dict pycadf's ``Event`` would serialise to, key for key and in its order, written out directly:
    building and validating the pycadf objects cost ~75 µs an event, two per request, for values that come
    from this module's own constants and the route table. ``tests/test_audit.py`` checks it against pycadf.
    """
    if caller is None:
        initiator: dict[str, Any] = {"id": UNKNOWN, "typeURI": _ACCOUNT_USER, "project_id": UNKNOWN}
    else:
        initiator = {
            "id": caller.user_id or UNKNOWN,
            "typeURI": _ACCOUNT_USER,
            "project_id": caller.project_id,
            "roles": list(caller.roles),
        }
        if caller.system_scope:
            initiator["system_scope"] = caller.system_scope
    return {
        "typeURI": _EVENT_TYPE_URI,
        "eventType": _ACTIVITY,
        "id": uuid4_text(),
        # pycadf's TIME_FORMAT (%Y-%m-%dT%H:%M:%S.%f%z, "+0000"), without strftime's ~10 µs.
        "eventTime": datetime.now(UTC).isoformat(timespec="microseconds")[:-6] + "+0000",
        "action": target.action,
        "outcome": outcome_of(status),
        "observer": {"id": OBSERVER_ID, "typeURI": _SERVICE_KEYMGR, "name": observer_name},
        "initiator": initiator,
        "target": {"id": target.resource_id, "typeURI": target.type_uri, "name": target.path},
        "reason": {"reasonType": "HTTP", "reasonCode": str(status) if status is not None else "pending"},
        "attachments": [{"typeURI": "mime:text/plain", "content": request_id, "name": "request_id"}],
    }
