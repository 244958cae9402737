"""The web console's server side, without a browser: what /ui serves, with which headers, and its helpers.
The console itself is driven in a real Chromium by tests/test_console.py."""

from __future__ import annotations

import json
import re
import uuid
from html.parser import HTMLParser
from pathlib import Path

import pytest
from starlette.testclient import TestClient

from donjon.api.app import create_app
from donjon.config import KeystoreConfig, Settings, UiConfig
from donjon.ui.routes import CONTENT_SECURITY_POLICY, STATIC
from tests.conftest import BASE, Api

PAGES = ["/ui", "/ui/", "/ui/unwrap"]
ASSETS = sorted(p.relative_to(STATIC).as_posix() for p in STATIC.rglob("*") if p.is_file())


def _assert_secured(r: object) -> None:
    headers = r.headers  # type: ignore[attr-defined]
    assert headers["content-security-policy"] == CONTENT_SECURITY_POLICY
    assert headers["x-frame-options"] == "DENY"
    assert headers["x-content-type-options"] == "nosniff"
    assert headers["referrer-policy"] == "no-referrer"
    assert headers["cache-control"] == "no-store"
    assert "set-cookie" not in headers


def test_the_policy_admits_no_inline_script_or_style_and_no_framing() -> None:
    directives = dict(d.split(" ", 1) for d in CONTENT_SECURITY_POLICY.split("; "))
    assert directives["default-src"] == "'none'"
    assert directives["script-src"] == "'self'" and directives["style-src"] == "'self'"
    assert directives["frame-ancestors"] == "'none'"
    assert directives["form-action"] == "'none'"  # a form posted before its module loaded puts nothing in a URL
    assert directives["require-trusted-types-for"] == "'script'" and directives["trusted-types"] == "'none'"
    assert "unsafe" not in CONTENT_SECURITY_POLICY


@pytest.mark.parametrize("path", PAGES + [f"/ui/assets/{a}" for a in ASSETS])
def test_pages_and_assets_are_served_with_the_security_headers(app_client: TestClient, path: str) -> None:
    r = app_client.get(path)
    assert r.status_code == 200, r.text
    _assert_secured(r)
    kind = r.headers["content-type"]
    expected = {".html": "text/html", ".js": "text/javascript", ".css": "text/css", ".svg": "image/svg+xml"}
    suffix = Path(path).suffix or ".html"
    assert kind.startswith(expected[suffix]), (path, kind)


@pytest.mark.parametrize(
    "path", ["/ui/assets/nope.js", "/ui/assets/../routes.py", "/ui/assets/%2e%2e/routes.py", "/ui/assets/js"]
)
def test_only_the_packaged_files_are_served(app_client: TestClient, path: str) -> None:
    r = app_client.get(path)
    assert r.status_code == 404
    assert "donjon" not in r.text.lower() or r.json()["code"] == 404


class _Inline(HTMLParser):
    """Collects what a strict CSP would refuse: inline scripts, style attributes and elements, handlers."""

    def __init__(self) -> None:
        super().__init__()
        self.found: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        names = {name for name, _ in attrs}
        if tag == "script" and "src" not in names:
            self.found.append("inline <script>")
        if tag == "style":
            self.found.append("<style>")
        self.found += [f"{tag} {name}=" for name in names if name == "style" or name.startswith("on")]


@pytest.mark.parametrize("name", [a for a in ASSETS if a.endswith(".html")])
def test_pages_carry_no_inline_script_or_style(name: str) -> None:
    parser = _Inline()
    parser.feed((STATIC / name).read_text())
    assert parser.found == []


@pytest.mark.parametrize("name", [a for a in ASSETS if a.endswith(".js")])
def test_modules_never_build_html_from_strings_nor_store_the_session(name: str) -> None:
    """Trusted Types would make these throw in the browser; this names the line before a browser does."""
    source = re.sub(r"(^|\s)//[^\n]*", "", (STATIC / name).read_text())  # comments may name them
    for sink in ("innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval(", "new Function"):
        assert sink not in source, (name, sink)
    for store in ("localStorage", "sessionStorage", "document.cookie", "indexedDB"):
        assert store not in source, (name, store)


def test_config_and_whoami(app_client: TestClient, api: Api) -> None:
    r = app_client.get("/ui/api/config")
    _assert_secured(r)
    assert r.json() == {"auth": "dev", "reveal_seconds": 30.0}
    r = api.get("/ui/api/whoami", headers={"X-Roles": "reader,member"})
    _assert_secured(r)
    assert r.json() == {
        "project_id": api.project_id,
        "user_id": "user-1",
        "roles": ["reader", "member"],
        "system_scope": None,
    }
    # Errors keep Barbican's shape, and the console's headers.
    r = app_client.get("/ui/api/whoami")
    assert r.status_code == 400 and r.json()["description"] == "Missing X-Project-Id"
    _assert_secured(r)


def test_keystone_sign_in_is_only_served_in_keystone_mode(app_client: TestClient) -> None:
    r = app_client.post("/ui/api/keystone/tokens", json={"username": "u", "password": "p", "project": "x"})
    assert r.status_code == 404
    assert r.json()["description"] == "Keystone sign-in is only served in keystone mode."
    _assert_secured(r)


def test_payloads_are_never_stored_by_a_cache(api: Api) -> None:
    secret_id = api.create_secret(payload="audit-sentinel-cache", payload_content_type="text/plain")
    for path in (f"/v1/secrets/{secret_id}/payload", f"/v1/secrets/{secret_id}"):
        r = api.get(path, headers={"Accept": "text/plain"})
        assert r.status_code == 200 and r.headers["cache-control"] == "no-store"


def _settings(data_dir: Path, **kw: object) -> Settings:
    return Settings(
        database_url=f"sqlite:///{data_dir / 'db.sqlite'}",
        data_dir=data_dir,
        host_href=BASE,
        keystore=KeystoreConfig(type="file", options={"path": str(data_dir / "root.key")}),
        **kw,  # type: ignore[arg-type]
    )


def test_pages_are_not_audited_but_the_api_requests_they_make_are(tmp_path: Path) -> None:
    with TestClient(create_app(_settings(tmp_path)), base_url=BASE) as client:
        project = f"p-{uuid.uuid4()}"
        for path in ["/ui", "/ui/unwrap", "/ui/assets/js/app.js", "/ui/api/config"]:
            assert client.get(path).status_code == 200
        assert client.get("/ui/api/whoami", headers={"X-Project-Id": project}).status_code == 200
    names = [json.loads(line)["event"]["target"]["name"] for line in (tmp_path / "audit.log").read_text().splitlines()]
    assert names == ["/ui/api/whoami"]


def test_the_console_can_be_turned_off(tmp_path: Path) -> None:
    with TestClient(create_app(_settings(tmp_path, ui=UiConfig(enabled=False))), base_url=BASE) as client:
        assert client.get("/ui").status_code == 404
        assert client.get("/ui/assets/js/app.js").status_code == 404
        assert client.get("/ui/api/whoami", headers={"X-Project-Id": "p"}).status_code == 404
        assert client.get("/openapi.json").status_code == 200  # the API is served as ever


def test_the_reveal_time_is_bounded(tmp_path: Path) -> None:
    for bad in (0, -1, 601):
        with pytest.raises(ValueError, match="reveal_seconds"):
            UiConfig(reveal_seconds=bad)
    assert re.fullmatch(r"\d+(\.\d+)?", str(UiConfig().reveal_seconds))


@pytest.mark.parametrize("path", ["/v1/secrets", "/v1/unwrap", "/ui/api/whoami", "/ui/api/keystone/tokens"])
def test_no_other_origin_may_send_credentials(app_client: TestClient, path: str) -> None:
    """CSRF: credentials travel in headers only, and a cross-origin request carrying one needs a CORS
    preflight that donjon never grants."""
    r = app_client.options(
        path,
        headers={
            "Origin": "https://elsewhere.example",
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "x-auth-token, x-project-id",
        },
    )
    assert r.status_code == 405
    assert not any(name.lower().startswith("access-control-") for name in r.headers)
