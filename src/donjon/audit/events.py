"""CADF events (pycadf) for API requests, built from what the request *is*, never from what it carries.

An event is derived only from the HTTP method, the matched route template, its path parameters, the
response status, the request id and the authenticated :class:`~donjon.auth.Caller`. Bodies, query strings,
headers and tokens never reach this module, so no payload, passphrase, token or key can end up in a record.
"""

from __future__ import annotations

import socket
import uuid
import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from pycadf import cadftaxonomy as taxonomy
from pycadf import cadftype, timestamp
from pycadf.attachment import Attachment
from pycadf.event import Event
from pycadf.reason import Reason
from pycadf.resource import Resource

from donjon.auth import Caller

# pycadf warns on every identifier that is not a UUID (project and user ids often are not): noise, and a
# warning registry that would grow with every distinct id.
warnings.filterwarnings("ignore", message="Invalid uuid", module="pycadf.identifier")

UNKNOWN = taxonomy.UNKNOWN
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
    parts = [p for p in template.split("/") if p and p != "v1"]
    kinds: list[str] = []
    resource_id = ""
    last_literal = ""
    for part in parts:
        if part.startswith("{"):
            name = part[1:-1].split(":", 1)[0]
            # The outermost id names the resource (the secret of /v1/secrets/{id}/metadata/{key}).
            resource_id = resource_id or str(path_params.get(name, ""))
            last_literal = ""
        else:
            kinds.append(_SEGMENT_TYPES.get(part, part))
            last_literal = part
    type_uri = "/".join([taxonomy.KEYMGR_OTHERS, *kinds])
    action = _ACTIONS.get(method, UNKNOWN)
    if action == taxonomy.ACTION_READ and last_literal in _COLLECTIONS:
        action = taxonomy.ACTION_LIST
    return Target(type_uri, resource_id or UNKNOWN, path[:_MAX_PATH], action)


def outcome_of(status: int | None) -> str:
    """success for 1xx-3xx, failure for 4xx/5xx; pending before there is a status."""
    if status is None:
        return str(taxonomy.OUTCOME_PENDING)
    return str(taxonomy.OUTCOME_SUCCESS if status < 400 else taxonomy.OUTCOME_FAILURE)


def build_event(
    target: Target, caller: Caller | None, status: int | None, request_id: str, observer_name: str = "donjon"
) -> dict[str, Any]:
    """The CADF event (as a JSON-ready dict) of one request; ``status`` None is the pending event."""
    initiator = Resource(
        typeURI=taxonomy.ACCOUNT_USER,
        id=(caller.user_id or UNKNOWN) if caller else UNKNOWN,
    )
    # pycadf serialises every attribute set on a resource; these are keystonemiddleware's extra fields.
    initiator.project_id = caller.project_id if caller else UNKNOWN
    if caller is not None:
        initiator.roles = list(caller.roles)
        if caller.system_scope:
            initiator.system_scope = caller.system_scope
    event = Event(
        eventType=cadftype.EVENTTYPE_ACTIVITY,
        eventTime=timestamp.get_utc_now(),
        action=target.action,
        outcome=outcome_of(status),
        initiator=initiator,
        target=Resource(typeURI=target.type_uri, id=target.resource_id, name=target.path),
        observer=Resource(typeURI=taxonomy.SERVICE_KEYMGR, id=OBSERVER_ID, name=observer_name),
        reason=Reason(reasonType="HTTP", reasonCode=str(status) if status is not None else "pending"),
    )
    event.add_attachment(Attachment(typeURI="mime:text/plain", content=request_id, name="request_id"))
    record: dict[str, Any] = _primitive(event)
    return record


def _primitive(value: Any) -> Any:
    # pycadf's own as_dict (oslo.serialization's to_primitive) costs ~100 µs an event; pycadf objects keep
    # their validated attributes in __dict__, which is all an event is.
    if isinstance(value, cadftype.CADFAbstractType):
        return {k: _primitive(v) for k, v in vars(value).items()}
    if isinstance(value, list):
        return [_primitive(v) for v in value]
    return value
