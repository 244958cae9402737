"""Barbican v1 over HTTP (httpx): what donjon and a real Barbican both serve.

``BarbicanAPI`` is the low-level client the ``donjon`` key manager and the ``donjon`` CLI are built on: one
method per call, JSON in and out, every list followed through all its pages, and the one status → error table
(``_errors.for_status``). Authentication is an ``httpx.Auth``: ``DevAuth`` (dev mode / Barbican's
unauthenticated pipeline: ``X-Project-Id``), ``TokenAuth`` (donjon tokens, or any fixed Keystone token:
``X-Auth-Token``), ``KeystoneSessionAuth`` (a keystoneauth1 session: token from the session, renewed on 401).
"""

from __future__ import annotations

import base64
import time
from collections.abc import Generator, Iterator, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import httpx

from donjon.client._errors import BackendError, ClientError, ConfigError, InvalidRequest, OrderFailed, for_status

MICROVERSION = "key-manager 1.1"
PAGE = 100  # Barbican's largest page


class DevAuth(httpx.Auth):
    """donjon's dev mode and Barbican's unauthenticated pipeline: the caller names its project."""

    def __init__(self, project_id: str, user_id: str | None = None, roles: str | None = None) -> None:
        self.headers = {"X-Project-Id": project_id}
        if user_id:
            self.headers["X-User-Id"] = user_id
        if roles:
            self.headers["X-Roles"] = roles

    def __repr__(self) -> str:
        return f"DevAuth(project_id={self.headers['X-Project-Id']!r})"

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        request.headers.update(self.headers)
        yield request


class TokenAuth(httpx.Auth):
    """A bearer token in ``X-Auth-Token``: a donjon token, or a Keystone token obtained elsewhere."""

    def __init__(self, token: str) -> None:
        self._token = token

    def __repr__(self) -> str:
        return "TokenAuth(token=[secure])"

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        request.headers["X-Auth-Token"] = self._token
        yield request


class KeystoneSessionAuth(httpx.Auth):
    """A keystoneauth1 session's token; on 401 the session re-authenticates and the request is sent again."""

    def __init__(self, session: Any) -> None:
        self.session = session

    def __repr__(self) -> str:
        return "KeystoneSessionAuth()"

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        request.headers.update(self._headers())
        response = yield request
        if response.status_code == 401 and self.session.invalidate():
            request.headers.update(self._headers())
            yield request

    def _headers(self) -> dict[str, str]:
        try:
            headers = self.session.get_auth_headers()
        except Exception as exc:  # keystoneauth's failures: wrong password, Keystone down...
            raise for_status(401)(f"keystone authentication failed: {type(exc).__name__}: {exc}", status=401) from exc
        return dict(headers or {})


@dataclass(frozen=True)
class Payload:
    """A payload as read back: its bytes and the content type the server gave."""

    data: bytes
    content_type: str

    def __repr__(self) -> str:
        return f"Payload(content_type={self.content_type!r}, {len(self.data)} bytes)"


def ref_id(ref_or_id: str) -> str:
    """The id at the end of a ref (``.../v1/secrets/<id>``), or the id itself."""
    return ref_or_id.rstrip("/").rsplit("/", 1)[-1]


class BarbicanAPI:
    """The Barbican v1 API of a donjon or Barbican server.

    >>> api = BarbicanAPI("http://127.0.0.1:9311", auth=DevAuth("demo"))
    >>> ref = api.create_secret({"name": "pw", "payload": "s3cret", "payload_content_type": "text/plain"})
    >>> api.get_payload(ref).data
    b's3cret'
    """

    def __init__(
        self,
        url: str,
        *,
        auth: httpx.Auth | None = None,
        timeout: float = 30.0,
        verify: bool | str = True,
        transport: httpx.BaseTransport | None = None,
        order_timeout: float = 120.0,
    ) -> None:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ConfigError(f"not an http(s) URL: {url!r}")
        self.url = url.rstrip("/")
        if self.url.endswith("/v1"):
            self.url = self.url[: -len("/v1")]
        self.order_timeout = order_timeout
        self._http = httpx.Client(
            base_url=self.url + "/v1/",
            auth=auth,
            timeout=timeout,
            verify=verify,
            transport=transport,
            headers={"OpenStack-API-Version": MICROVERSION, "User-Agent": "donjon-client"},
            trust_env=False,
        )

    def __repr__(self) -> str:
        return f"BarbicanAPI(url={self.url!r})"

    def close(self) -> None:
        self._http.close()

    # ------------------------------------------------------------------ plumbing

    def request(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        params: Mapping[str, Any] | None = None,
        headers: Mapping[str, str] | None = None,
        content: bytes | None = None,
    ) -> httpx.Response:
        """One call; an error status raises the SDK error for it, with the server's description."""
        path = self._path(path)
        try:
            response = self._http.request(method, path, json=json, params=params, headers=headers, content=content)
        except httpx.TimeoutException as exc:
            raise BackendError(f"{method} {path}: timed out ({self.url})") from exc
        except httpx.HTTPError as exc:
            raise BackendError(f"{method} {path}: cannot reach {self.url}: {type(exc).__name__}: {exc}") from exc
        if response.status_code >= 400:
            raise for_status(response.status_code)(
                f"{method} {path}: {response.status_code} {_describe(response)}", status=response.status_code
            )
        return response

    def _path(self, path_or_ref: str) -> str:
        """A path under /v1/, from a path (``secrets/<id>``) or a full ref of this server."""
        if "://" in path_or_ref:
            parts = urlsplit(path_or_ref)
            path = parts.path
            marker = "/v1/"
            if marker not in path:
                raise InvalidRequest(f"not a Barbican v1 ref: {path_or_ref!r}")
            path = path.split(marker, 1)[1]
            return path + (f"?{parts.query}" if parts.query else "")
        return path_or_ref.lstrip("/")

    def _json(self, method: str, path: str, **kw: Any) -> Any:
        response = self.request(method, path, **kw)
        try:
            return response.json()
        except ValueError as exc:
            raise BackendError(f"{method} {path}: the server answered {response.status_code} without JSON") from exc

    def pages(self, collection: str, key: str, params: Mapping[str, Any] | None = None) -> Iterator[dict[str, Any]]:
        """Every item of a list, page after page (``limit``/``offset``) until the server has no ``next``."""
        query: dict[str, Any] = {k: v for k, v in (params or {}).items() if v is not None}
        query.setdefault("limit", PAGE)
        offset = int(query.pop("offset", 0))
        seen: set[str] = set()
        while True:
            body = self._json("GET", collection, params={**query, "offset": offset})
            items = body.get(key) or []
            for item in items:
                ident = next((v for k, v in item.items() if k.endswith("_ref") and isinstance(v, str)), None)
                if ident is not None:
                    if ident in seen:
                        continue  # an item that moved between pages
                    seen.add(ident)
                yield item
            if not body.get("next") or not items:
                return
            offset += len(items)

    # ------------------------------------------------------------------ secrets

    def create_secret(self, body: Mapping[str, Any]) -> str:
        """POST /v1/secrets; the new secret's ref."""
        return str(self._json("POST", "secrets", json=dict(body))["secret_ref"])

    def store_bytes(
        self,
        data: bytes,
        *,
        secret_type: str = "opaque",  # noqa: S107
        name: str | None = None,
        algorithm: str | None = None,
        bit_length: int | None = None,
        mode: str | None = None,
        expiration: str | None = None,
        content_type: str = "application/octet-stream",
        max_reads: int | None = None,
    ) -> str:
        """Store ``data`` exactly: base64 octet-stream (or, with ``content_type="text/plain"``, UTF-8 text).
        ``max_reads`` (a donjon extension): the payload is served that many times, then deleted."""
        body: dict[str, Any] = {"secret_type": secret_type, **_payload_body(data, content_type)}
        for key, value in (
            ("name", name),
            ("algorithm", algorithm),
            ("bit_length", bit_length),
            ("mode", mode),
            ("expiration", expiration),
            ("max_reads", max_reads),
        ):
            if value is not None:
                body[key] = value
        return self.create_secret(body)

    def get_secret(self, secret: str) -> dict[str, Any]:
        return dict(self._json("GET", f"secrets/{ref_id(secret)}", headers={"Accept": "application/json"}))

    def get_payload(
        self, secret: str, accept: str = "application/octet-stream", *, version: int | None = None
    ) -> Payload:
        """The payload; ``version``: a previous version within its grace period (a donjon extension)."""
        params = {"version": str(version)} if version is not None else None
        response = self.request("GET", f"secrets/{ref_id(secret)}/payload", headers={"Accept": accept}, params=params)
        return Payload(response.content, response.headers.get("content-type", accept).split(";")[0])

    # donjon's lifecycle extensions (docs/api-compatibility.md, "Lifecycle"); a Barbican answers them 404.

    def create_version(self, secret: str, data: bytes, content_type: str = "application/octet-stream") -> int:
        """POST /v1/secrets/{id}/versions: ``data`` becomes the current version; its number."""
        body = _payload_body(data, content_type)
        return int(self._json("POST", f"secrets/{ref_id(secret)}/versions", json=body)["version"])

    def lifecycle(self, secret: str) -> dict[str, Any]:
        """max_reads, reads_left, current_version and the readable versions."""
        return dict(self._json("GET", f"secrets/{ref_id(secret)}/lifecycle"))

    def wrap_secret(self, secret: str, ttl: int | None = None) -> dict[str, Any]:
        """A single-use token that fetches the payload once (``wrap_token``, ``expires``)."""
        body = {"ttl": ttl} if ttl is not None else {}
        return dict(self._json("POST", f"secrets/{ref_id(secret)}/wrap", json=body))

    def unwrap(self, token: str, accept: str = "application/octet-stream") -> Payload:
        """The payload for a wrap token; the token is the only credential, sent in a header (never the URL)."""
        response = self.request("POST", "unwrap", headers={"X-Wrap-Token": token, "Accept": accept})
        return Payload(response.content, response.headers.get("content-type", accept).split(";")[0])

    def put_payload(self, secret: str, data: bytes, content_type: str = "application/octet-stream") -> None:
        """PUT /v1/secrets/{id}: the payload of a secret created without one."""
        self.request("PUT", f"secrets/{ref_id(secret)}", content=data, headers={"Content-Type": content_type})

    def delete_secret(self, secret: str, *, force: bool = False) -> None:
        if force:
            self.request(
                "DELETE",
                f"secrets/{ref_id(secret)}",
                params={"force": "true"},
                headers={"OpenStack-API-Version": "key-manager 1.2"},
            )
        else:
            self.request("DELETE", f"secrets/{ref_id(secret)}")

    def list_secrets(self, **filters: Any) -> Iterator[dict[str, Any]]:
        """Every secret matching ``filters`` (Barbican's: name, alg, bits, mode, secret_type, acl_only...).

        Sorted by creation so that offset paging neither skips nor repeats (Barbican's default order is none).
        """
        filters.setdefault("sort", "created:asc")
        return self.pages("secrets", "secrets", filters)

    def secret_metadata(self, secret: str) -> dict[str, str]:
        return dict(self._json("GET", f"secrets/{ref_id(secret)}/metadata")["metadata"])

    def set_secret_metadata(self, secret: str, metadata: Mapping[str, str]) -> None:
        self.request("PUT", f"secrets/{ref_id(secret)}/metadata", json={"metadata": dict(metadata)})

    # ------------------------------------------------------------------ consumers

    def list_consumers(self, kind: str, ident: str) -> list[dict[str, Any]]:
        return list(self.pages(f"{kind}/{ref_id(ident)}/consumers", "consumers"))

    def add_consumer(self, kind: str, ident: str, consumer: Mapping[str, str]) -> None:
        self.request("POST", f"{kind}/{ref_id(ident)}/consumers/", json=dict(consumer))

    def remove_consumer(self, kind: str, ident: str, consumer: Mapping[str, str]) -> None:
        self.request("DELETE", f"{kind}/{ref_id(ident)}/consumers/", json=dict(consumer))

    # ------------------------------------------------------------------ orders

    def create_order(self, order_type: str, meta: Mapping[str, Any]) -> str:
        return str(self._json("POST", "orders", json={"type": order_type, "meta": dict(meta)})["order_ref"])

    def get_order(self, order: str) -> dict[str, Any]:
        return dict(self._json("GET", f"orders/{ref_id(order)}"))

    def list_orders(self, **filters: Any) -> Iterator[dict[str, Any]]:
        return self.pages("orders", "orders", filters)

    def delete_order(self, order: str) -> None:
        self.request("DELETE", f"orders/{ref_id(order)}")

    def wait_for_order(self, order: str, timeout: float | None = None) -> dict[str, Any]:
        """Poll until the order is ACTIVE (returned) or ERROR (``OrderFailed``)."""
        deadline = time.monotonic() + (self.order_timeout if timeout is None else timeout)
        delay = 0.05
        while True:
            body = self.get_order(order)
            if body.get("status") == "ACTIVE":
                return body
            if body.get("status") == "ERROR":
                code = str(body.get("error_status_code") or "")
                if code.startswith("4"):  # the order's input was refused (size, algorithm)
                    raise InvalidRequest(
                        f"order {ref_id(order)} failed: {code} {body.get('error_reason') or ''}".strip(),
                        status=int(code),
                    )
                raise OrderFailed(
                    f"order {ref_id(order)} failed: {code} {body.get('error_reason') or ''}".strip(),
                    status=int(code) if code.isdigit() else None,
                )
            if time.monotonic() > deadline:
                raise BackendError(f"order {ref_id(order)} still {body.get('status')} after the timeout")
            time.sleep(delay)
            delay = min(delay * 2, 1.0)

    # ------------------------------------------------------------------ containers

    def create_container(self, container_type: str, secret_refs: Mapping[str, str], name: str | None = None) -> str:
        body: dict[str, Any] = {
            "type": container_type,
            "secret_refs": [{"name": k, "secret_ref": self._secret_ref(v)} for k, v in secret_refs.items()],
        }
        if name is not None:
            body["name"] = name
        return str(self._json("POST", "containers", json=body)["container_ref"])

    def _secret_ref(self, secret: str) -> str:
        return secret if "://" in secret else f"{self.url}/v1/secrets/{secret}"

    def get_container(self, container: str) -> dict[str, Any]:
        return dict(self._json("GET", f"containers/{ref_id(container)}"))

    def list_containers(self, **filters: Any) -> Iterator[dict[str, Any]]:
        return self.pages("containers", "containers", filters)

    def delete_container(self, container: str) -> None:
        self.request("DELETE", f"containers/{ref_id(container)}")

    # ------------------------------------------------------------------ ACLs

    def get_acl(self, kind: str, ident: str) -> dict[str, Any]:
        return dict(self._json("GET", f"{kind}/{ref_id(ident)}/acl"))

    def set_acl(self, kind: str, ident: str, users: list[str], project_access: bool, *, merge: bool = False) -> None:
        body = {"read": {"users": users, "project-access": project_access}}
        self.request("PATCH" if merge else "PUT", f"{kind}/{ref_id(ident)}/acl", json=body)

    def delete_acl(self, kind: str, ident: str) -> None:
        self.request("DELETE", f"{kind}/{ref_id(ident)}/acl")


def _payload_body(data: bytes, content_type: str) -> dict[str, str]:
    """The payload fields of a JSON body: UTF-8 text for text/plain, else base64."""
    if content_type.startswith("text/plain"):
        return {"payload": data.decode("utf-8"), "payload_content_type": "text/plain"}
    return {
        "payload": base64.b64encode(data).decode("ascii"),
        "payload_content_type": content_type,
        "payload_content_encoding": "base64",
    }


def _describe(response: httpx.Response) -> str:
    """The server's error description (Barbican's ``{code, title, description}``), else its reason phrase."""
    try:
        body = response.json()
    except ValueError:
        return response.reason_phrase
    if isinstance(body, dict):
        for key in ("description", "title", "error", "message"):
            if isinstance(body.get(key), str) and body[key]:
                return str(body[key])
    return response.reason_phrase


__all__ = ["BarbicanAPI", "ClientError", "DevAuth", "KeystoneSessionAuth", "Payload", "TokenAuth", "ref_id"]
