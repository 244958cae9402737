"""The web console end to end, in headless Chromium from Debian's package (/usr/bin/chromium), driven by
Playwright for Python, against real donjon servers: dev mode, token mode, and keystone mode with the real
Keystone 30 of tests/components/keystone.py.

Every page is watched: a script error or anything the Content-Security-Policy refuses (Chromium reports
both on the console) fails the test. ``DONJON_CONSOLE_SCREENSHOTS=<dir>`` saves the views docs/console.md
shows.
"""

from __future__ import annotations

import os
import re
import subprocess
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
import pytest

from tests.live_server import DONJON, LiveServer

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Locator, Page

    from tests.components.keystone import Keystone

pytestmark = pytest.mark.live

CHROMIUM = "/usr/bin/chromium"
# Chromium as this machine runs it: no sandbox (root), no GPU, and no background connections (the network is
# closed: Chromium's own calls home would only fail). Playwright adds --headless and a fresh --user-data-dir.
FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
REVEAL_SECONDS = 2
SHOTS = os.environ.get("DONJON_CONSOLE_SCREENSHOTS")
# Payloads start with this: tests/conftest.py fails the run if one reaches an audit or server log.
SENTINEL = "audit-sentinel-ui-"


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: ./scripts/test installs Debian's chromium package")
    from playwright.sync_api import expect as playwright_expect
    from playwright.sync_api import sync_playwright

    # Assertions wait for the page up to 15 s (Playwright's default is 5): the machine is shared and busy.
    playwright_expect.set_options(timeout=15_000)
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        yield chromium
        chromium.close()


@pytest.fixture(scope="module")
def dev_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    server = LiveServer(
        tmp_path_factory.mktemp("console-dev"), workers=1, env={"DONJON_UI__REVEAL_SECONDS": str(REVEAL_SECONDS)}
    )
    server.start()
    yield server
    server.stop()


@dataclass
class Console:
    """A fresh browser context (no cookie, no storage) on one server, and what its pages reported."""

    browser: Browser
    url: str
    problems: list[str] = field(default_factory=list)
    pages: list[Page] = field(default_factory=list)
    viewport: dict[str, int] = field(default_factory=lambda: {"width": 1100, "height": 800})

    def page(self, path: str = "/ui") -> Page:
        context = self.browser.new_context(viewport=self.viewport)  # type: ignore[arg-type]
        context.grant_permissions(["clipboard-read", "clipboard-write"], origin=self.url)
        page = context.new_page()
        page.set_default_timeout(15_000)

        def console(message: Any) -> None:
            # An API refusal is the test's own doing (and shown on the page); anything else is a fault.
            if message.type == "error" and "Failed to load resource" not in message.text:
                self.problems.append(message.text)

        page.on("console", console)
        page.on("pageerror", lambda error: self.problems.append(f"page error: {error}"))
        page.goto(self.url + path)
        self.pages.append(page)
        return page

    def close(self) -> None:
        for page in self.pages:
            page.context.close()


@pytest.fixture
def console(browser: Browser, dev_server: LiveServer) -> Iterator[Console]:
    c = Console(browser, dev_server.url)
    yield c
    c.close()
    assert c.problems == [], "the console reported errors (script errors or CSP refusals)"


def shot(page: Page, name: str) -> None:
    if SHOTS:
        Path(SHOTS).mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(Path(SHOTS) / f"{name}.png"))


def expect(locator: Locator) -> Any:
    from playwright.sync_api import expect as playwright_expect

    return playwright_expect(locator)


def sign_in_dev(page: Page, project: str, user: str = "alice", roles: str = "member", *, listed: bool = True) -> None:
    page.get_by_label("Project").fill(project)
    page.get_by_label("User id").fill(user)
    page.get_by_label("Roles").fill(roles)
    page.get_by_role("button", name="Sign in").click()
    if listed:
        expect(page.get_by_role("heading", name="Secrets", exact=True)).to_be_visible()
    else:
        expect(page.get_by_role("button", name="Sign out")).to_be_visible()


def sign_out(page: Page) -> None:
    page.get_by_role("button", name="Sign out").click()
    expect(page.get_by_role("heading", name="Sign in")).to_be_visible()


def api(server: LiveServer, project: str, user: str = "alice", roles: str = "member") -> httpx.Client:
    headers = {"X-Project-Id": project, "X-User-Id": user, "X-Roles": roles}
    return httpx.Client(base_url=server.url, headers=headers, timeout=30)


def store(client: httpx.Client, name: str, payload: str, **extra: Any) -> str:
    body = {"name": name, "payload": payload, "payload_content_type": "text/plain", **extra}
    r = client.post("/v1/secrets", json=body)
    assert r.status_code == 201, r.text
    return str(r.json()["secret_ref"].rsplit("/", 1)[1])


def seeded(
    console: Console, server: LiveServer, secrets: dict[str, str], roles: str = "member"
) -> tuple[Page, dict[str, str]]:
    """A page signed in to a new project holding ``secrets`` (name -> payload, stored through the API), and
    their ids by name (with the project under "project")."""
    ids = {"project": f"p-{uuid.uuid4().hex[:8]}"}
    with api(server, ids["project"]) as client:
        ids.update({name: store(client, name, payload) for name, payload in secrets.items()})
    page = console.page()
    sign_in_dev(page, ids["project"], roles=roles)
    return page, ids


def open_secret(page: Page, name: str) -> None:
    page.get_by_role("link", name=name, exact=True).click()
    expect(page.get_by_role("heading", name=name, exact=True)).to_be_visible()


# ---- dev mode ----


def test_sign_in_create_search_reveal_and_copy(console: Console, dev_server: LiveServer) -> None:
    project = f"p-{uuid.uuid4().hex[:8]}"
    with api(dev_server, project) as client:
        store(client, "api-key", SENTINEL + "other", secret_type="passphrase")
        store(client, "tls-cert-note", SENTINEL + "third")
    page = console.page()
    expect(page.get_by_label("Project")).to_be_focused()
    shot(page, "signin")
    sign_in_dev(page, project)
    shot(page, "list")
    # Create a typed secret through the form.
    payload = SENTINEL + "db-password"
    page.get_by_role("link", name="New secret").click()
    form = page.get_by_role("form", name="Store a value")
    form.get_by_label("Name").fill("db-password")
    form.get_by_label("Value", exact=True).fill(payload)
    shot(page, "create")
    form.get_by_role("button", name="Store the secret").click()
    expect(page.get_by_role("heading", name="db-password")).to_be_visible()
    expect(page.locator(".props").first).to_contain_text("text/plain")

    # Search: by name (a substring), by type; paging over the API's offset and limit.
    page.get_by_role("link", name="Secrets", exact=True).click()
    rows = page.locator("tbody tr")
    expect(rows).to_have_count(3)
    page.get_by_label("Name contains").fill("pass")
    page.get_by_role("button", name="Search").click()
    expect(rows).to_have_count(1)
    expect(rows.first).to_contain_text("db-password")
    page.get_by_label("Name contains").fill("")
    page.get_by_label("Type").select_option("passphrase")
    page.get_by_role("button", name="Search").click()
    expect(rows).to_have_count(1)
    expect(rows.first).to_contain_text("api-key")
    page.get_by_label("Type").select_option("")
    page.get_by_label("Created from").fill("2000-01-01")
    page.get_by_label("Page size").select_option("10")
    page.get_by_role("button", name="Search").click()
    expect(page.locator(".range")).to_have_text("1–3 of 3")
    page.get_by_label("Created from").fill("2999-01-01")
    page.get_by_role("button", name="Search").click()
    expect(page.get_by_text("No secret matches.")).to_be_visible()
    page.reload()  # the session lived in the page: gone with it
    sign_in_dev(page, project)
    page.goto(f"{dev_server.url}/ui#/secrets?limit=2")
    expect(page.locator(".range")).to_have_text("1–2 of 3")
    page.get_by_role("link", name="Next page").click()
    expect(page.locator(".range")).to_have_text("3–3 of 3")
    expect(rows).to_have_count(1)
    page.get_by_role("link", name="Previous page").click()
    expect(page.locator(".range")).to_have_text("1–2 of 3")

    # Reveal on an explicit click only, hidden again after reveal_seconds; copy to the clipboard.
    page.get_by_role("link", name="Secrets", exact=True).click()
    open_secret(page, "db-password")
    value = page.locator("#payload")
    expect(value).to_be_hidden()
    assert payload not in page.content()
    page.get_by_role("button", name="Reveal").click()
    expect(value).to_have_text(payload)
    expect(page.get_by_text(re.compile(r"Hidden again in \d+ s"))).to_be_visible()
    shot(page, "detail")
    expect(value).to_be_hidden(timeout=(REVEAL_SECONDS + 3) * 1000)
    assert payload not in page.content()
    page.get_by_role("button", name="Copy", exact=True).click()
    expect(page.get_by_text("The value copied to the clipboard.")).to_be_visible()
    assert page.evaluate("navigator.clipboard.readText()") == payload
    assert payload not in page.content()

    # The session is in page memory only: no cookie, no web storage, nothing in the URL.
    assert page.evaluate("[localStorage.length, sessionStorage.length, document.cookie]") == [0, 0, ""]
    assert project not in page.url and "alice" not in page.url
    assert page.context.cookies() == []


def test_wrap_then_unwrap_once(console: Console, dev_server: LiveServer) -> None:
    payload = SENTINEL + "handoff"
    page, _ = seeded(console, dev_server, {"hand-off": payload})
    open_secret(page, "hand-off")
    page.get_by_role("button", name="Make a one-time link").click()
    link = page.get_by_label("One-time link").input_value()
    assert link.startswith(f"{dev_server.url}/ui/unwrap#djw_")
    shot(page, "wrap")

    # Someone else, not signed in, opens it: the token leaves the address bar and travels in a header.
    other = console.page("/ui/unwrap#" + link.split("#", 1)[1])
    expect(other.get_by_role("heading", name="A secret shared with you")).to_be_visible()
    assert "#" not in other.url
    sent: list[dict[str, str]] = []
    other.on("request", lambda request: sent.append({"url": request.url, **request.headers}))
    other.get_by_role("button", name="Open the secret").click()
    expect(other.locator(".payload")).to_have_text(payload)
    shot(other, "unwrap")
    unwrap = [r for r in sent if r["url"].endswith("/v1/unwrap")]
    assert len(unwrap) == 1 and unwrap[0]["x-wrap-token"] == link.split("#", 1)[1]
    assert not any("djw_" in r["url"] for r in sent)

    # A second opening of the same link fails, visibly.
    again = console.page("/ui/unwrap#" + link.split("#", 1)[1])
    again.get_by_role("button", name="Open the secret").click()
    expect(again.get_by_role("alert")).to_contain_text("404 Not Found: Wrap token not found.")
    expect(again.locator(".payload")).to_be_hidden()


def test_share_through_an_acl_and_see_it_as_the_other_user(console: Console, dev_server: LiveServer) -> None:
    owner_project, other_project = f"p-{uuid.uuid4().hex[:8]}", f"q-{uuid.uuid4().hex[:8]}"
    payload = SENTINEL + "shared"
    with api(dev_server, owner_project) as client:
        store(client, "shared-db", payload)
    page = console.page()
    sign_in_dev(page, owner_project)
    open_secret(page, "shared-db")
    acl = page.get_by_role("region", name="Access control (ACL)")
    acl.get_by_label("Users who may read").fill("bob")
    acl.get_by_label("Every member of the project may read it").uncheck()
    acl.get_by_role("button", name="Save the ACL").click()
    expect(page.get_by_text("ACL saved.")).to_be_visible()
    acl = page.get_by_role("region", name="Access control (ACL)")
    expect(acl.locator(".props")).to_contain_text("bob")
    expect(acl.locator(".props")).to_contain_text("Only its creator, admins and listed users")
    sign_out(page)

    sign_in_dev(page, other_project, user="bob")
    expect(page.get_by_text("No secret matches.")).to_be_visible()  # bob's own project has none
    page.get_by_label("Shared with me (ACL)").check()
    page.get_by_role("button", name="Search").click()
    expect(page.get_by_role("heading", name="Secrets shared with me")).to_be_visible()
    open_secret(page, "shared-db")
    page.get_by_role("button", name="Reveal").click()
    expect(page.locator("#payload")).to_have_text(payload)
    # Reading is all the ACL grants: the ACL itself is the owner's (the API's 403, shown in place).
    expect(page.get_by_role("region", name="Access control (ACL)")).to_contain_text(
        "403 Forbidden: Secret ACL retrieval attempt not allowed"
    )


def test_a_denied_action_shows_the_api_error(console: Console, dev_server: LiveServer) -> None:
    page = console.page()
    sign_in_dev(page, f"p-{uuid.uuid4().hex[:8]}", roles="reader", listed=False)
    # Listing needs the member role: the API's refusal is the page.
    expect(page.get_by_role("heading", name="This page could not be shown")).to_be_visible()
    expect(page.get_by_role("alert")).to_contain_text("403 Forbidden: Secret(s) retrieval attempt not allowed")
    page.goto(page.url.split("#")[0] + "#/secrets/new")
    form = page.get_by_role("form", name="Store a value")
    form.get_by_label("Value", exact=True).fill(SENTINEL + "denied")
    form.get_by_role("button", name="Store the secret").click()
    alert = page.get_by_role("alert")
    expect(alert).to_contain_text(
        "Secret creation: 403 Forbidden: Secret creation attempt not allowed - "
        "please review your user/project privileges"
    )
    shot(page, "denied")
    # A reader is not a reader of the audit log either.
    page.get_by_role("link", name="Audit").click()
    expect(page.get_by_role("alert")).to_contain_text("403 Forbidden: Audit records retrieval attempt not allowed")


def test_generate_a_password_and_follow_the_order(console: Console, dev_server: LiveServer) -> None:
    project = f"p-{uuid.uuid4().hex[:8]}"
    page = console.page()
    sign_in_dev(page, project)
    page.get_by_role("link", name="New secret").click()
    form = page.get_by_role("form", name="Or generate one")
    form.get_by_label("Generate").select_option("password")
    form.get_by_label("Name").fill("generated-pw")
    form.get_by_label("Length").fill("24")
    form.get_by_label("symbols").uncheck()
    form.get_by_role("button", name="Generate").click()
    expect(page.get_by_role("heading", name=re.compile("^Order "))).to_be_visible()
    expect(page.locator(".order-status")).to_have_text("Status: ACTIVE", timeout=30_000)
    shot(page, "order")
    page.get_by_role("link", name="Open the generated secret").click()
    expect(page.get_by_role("heading", name="generated-pw")).to_be_visible()
    page.get_by_role("button", name="Reveal").click()
    expect(page.locator("#payload")).to_have_text(re.compile(r"^[A-Za-z0-9]{24}$"))
    # An AES key: binary, shown as base64.
    page.get_by_role("link", name="Orders").click()
    form = page.get_by_role("form", name="New order")
    form.get_by_label("Generate").select_option("key")
    form.get_by_label("Size").select_option("128")
    form.get_by_role("button", name="Generate").click()
    expect(page.locator(".order-status")).to_have_text("Status: ACTIVE", timeout=30_000)
    page.get_by_role("link", name="Open the generated secret").click()
    page.get_by_role("button", name="Reveal").click()
    expect(page.locator("#payload")).to_have_text(re.compile(r"^[A-Za-z0-9+/]{22}==$"))
    expect(page.get_by_text("shown as base64")).to_be_visible()
    # An order that fails ends in ERROR, with its reason.
    with api(dev_server, project) as client:
        r = client.post("/v1/orders", json={"type": "asymmetric", "meta": {"algorithm": "rsa", "bit_length": 1024}})
        assert r.status_code == 202, r.text
        failed = r.json()["order_ref"].rsplit("/", 1)[1]
    page.get_by_role("link", name="Orders").click()
    expect(page.locator("tbody tr")).to_have_count(2)  # the key and the key pair (passwords are listed apart)
    page.get_by_role("link", name=failed[:8]).click()
    expect(page.locator(".order-status")).to_have_text("Status: ERROR", timeout=30_000)
    expect(page.locator(".props").first).to_contain_text("400: ")


def test_new_version_and_delete_after_seeing_the_consumers(console: Console, dev_server: LiveServer) -> None:
    consumer = {"service": "nova", "resource_type": "instance", "resource_id": "vm-42"}
    page, ids = seeded(console, dev_server, {"rotating": SENTINEL + "v1"})
    project, secret_id = ids["project"], ids["rotating"]
    with api(dev_server, project) as client:
        assert client.post(f"/v1/secrets/{secret_id}/consumers", json=consumer).status_code == 200
    open_secret(page, "rotating")
    expect(page.get_by_role("region", name="Consumers")).to_contain_text("vm-42")
    page.locator("summary", has_text="New version").click()
    page.get_by_label("New value").fill(SENTINEL + "v2")
    page.get_by_role("button", name="Store a new version").click()
    expect(page.get_by_text("Version 2 is now the current value.")).to_be_visible()
    expect(page.get_by_role("region", name="Lifecycle")).to_contain_text("Current version2")
    page.get_by_role("button", name="Reveal").click()
    expect(page.locator("#payload")).to_have_text(SENTINEL + "v2")

    page.get_by_role("button", name="Delete this secret").click()
    dialog = page.get_by_role("dialog", name="Delete this secret?")
    expect(dialog).to_contain_text("1 consumer(s) still use this secret")
    expect(dialog).to_contain_text("vm-42")
    shot(page, "delete")
    dialog.get_by_role("button", name="Cancel").click()
    expect(dialog).to_be_hidden()
    with api(dev_server, project) as client:
        assert client.get(f"/v1/secrets/{secret_id}").status_code == 200
    page.get_by_role("button", name="Delete this secret").click()
    page.get_by_role("dialog").get_by_role("button", name="Delete the secret").click()
    expect(page.get_by_role("heading", name="Secrets", exact=True)).to_be_visible()
    with api(dev_server, project) as client:
        assert client.get(f"/v1/secrets/{secret_id}").status_code == 404


def test_containers_quotas_and_audit(console: Console, dev_server: LiveServer) -> None:
    page, ids = seeded(console, dev_server, {"in-a-box": SENTINEL + "box"}, roles="admin")
    secret_id = ids["in-a-box"]
    page.get_by_role("link", name="Containers").click()
    page.get_by_role("link", name="New container").click()
    page.get_by_label("Name", exact=True).fill("bundle")
    page.get_by_label("Name in the container").fill("db")
    page.get_by_label("Secret id").fill(secret_id)
    page.get_by_role("button", name="Create the container").click()
    expect(page.get_by_role("heading", name="bundle")).to_be_visible()
    expect(page.get_by_role("region", name="Secrets")).to_contain_text(secret_id)
    page.get_by_role("link", name="Containers").click()
    expect(page.locator("tbody tr")).to_have_count(1)

    page.get_by_role("link", name="Quotas").click()
    expect(page.get_by_role("cell", name="unlimited").first).to_be_visible()
    target = f"q-{uuid.uuid4().hex[:8]}"
    form = page.get_by_role("form", name="Set a project's quotas")
    form.get_by_label("Project id").fill(target)
    form.get_by_label("secrets").fill("5")
    form.get_by_role("button", name="Save").click()
    expect(page.get_by_text("Quotas saved.")).to_be_visible()
    expect(page.get_by_role("row", name=re.compile(target))).to_contain_text("5")
    shot(page, "quotas")

    page.get_by_role("link", name="Audit").click()
    page.get_by_role("button", name="Verify the chain").click()
    expect(page.get_by_text(re.compile(r"The audit chain verifies: \d+ records"))).to_be_visible()
    records = page.get_by_role("region", name="Records of this project")
    expect(records).to_contain_text("/v1/containers")
    expect(records).to_contain_text(f"/v1/secrets/{secret_id}")
    assert SENTINEL not in page.content()
    shot(page, "audit")


def test_nothing_a_secret_is_named_runs_as_script(console: Console, dev_server: LiveServer) -> None:
    name = '<img src=x onerror="window.pwned=1"><script>window.pwned=2</script>'
    page, _ = seeded(console, dev_server, {name: SENTINEL + "xss"})
    expect(page.get_by_role("link", name=name)).to_be_visible()
    page.get_by_role("link", name=name).click()
    expect(page.get_by_role("heading", name=name)).to_be_visible()
    assert page.evaluate("window.pwned") is None
    assert page.locator("main img").count() == 0


def test_keyboard_alone(console: Console, dev_server: LiveServer) -> None:
    project = f"p-{uuid.uuid4().hex[:8]}"
    payload = SENTINEL + "keys"
    with api(dev_server, project) as client:
        store(client, "by-keyboard", payload)
    page = console.page()
    expect(page.get_by_label("Project")).to_be_focused()  # the first field, holding an example project
    page.keyboard.press("Control+A")
    page.keyboard.type(project)
    page.keyboard.press("Tab")
    page.keyboard.press("Control+A")
    page.keyboard.type("alice")
    page.keyboard.press("Enter")
    expect(page.get_by_role("heading", name="Secrets", exact=True)).to_be_focused()

    def tab_to(locator: Locator, limit: int = 60) -> None:
        for _ in range(limit):
            page.keyboard.press("Tab")
            if locator.evaluate("el => el === document.activeElement"):
                return
        raise AssertionError(f"Tab never reached {locator}")

    tab_to(page.get_by_role("link", name="by-keyboard"))
    page.keyboard.press("Enter")
    expect(page.get_by_role("heading", name="by-keyboard")).to_be_focused()
    tab_to(page.get_by_role("button", name="Reveal"))
    page.keyboard.press("Enter")
    expect(page.locator("#payload")).to_have_text(payload)
    page.keyboard.press("Enter")  # the same button now hides it
    expect(page.locator("#payload")).to_be_hidden()
    tab_to(page.get_by_role("button", name="Delete this secret"))
    page.keyboard.press("Enter")
    dialog = page.get_by_role("dialog")
    expect(dialog).to_be_visible()
    expect(dialog.get_by_role("button", name="Cancel")).to_be_focused()
    page.keyboard.press("Escape")
    expect(dialog).to_be_hidden()
    with api(dev_server, project) as client:
        assert len(client.get("/v1/secrets").json()["secrets"]) == 1


def test_readable_on_a_phone(browser: Browser, dev_server: LiveServer) -> None:
    project = f"p-{uuid.uuid4().hex[:8]}"
    with api(dev_server, project) as client:
        for n in range(3):
            store(client, f"a-rather-long-secret-name-for-a-small-screen-{n}", SENTINEL + str(n))
    phone = Console(browser, dev_server.url, viewport={"width": 390, "height": 844})
    try:
        page = phone.page()
        sign_in_dev(page, project)

        def fits() -> bool:
            return bool(page.evaluate("document.documentElement.scrollWidth <= document.documentElement.clientWidth"))

        assert fits()
        shot(page, "phone-list")
        open_secret(page, "a-rather-long-secret-name-for-a-small-screen-0")
        assert fits()
        page.get_by_role("button", name="Reveal").click()
        expect(page.locator("#payload")).to_be_visible()
        assert fits()
        shot(page, "phone-detail")
    finally:
        phone.close()
    assert phone.problems == []


# ---- token mode ----


@pytest.fixture(scope="module")
def token_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    # No token cache: a revocation is seen by the next request.
    env = {"DONJON_AUTH": "token", "DONJON_TOKEN_CACHE_SECONDS": "0"}
    server = LiveServer(tmp_path_factory.mktemp("console-token"), env=env, dev=False, workers=1)
    server.start()
    yield server
    server.stop()


def _donjon_token(server: LiveServer, *args: str) -> str:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DONJON_")}
    env.update(DONJON_AUTH="token", DONJON_DATA_DIR=str(server.data_dir))
    result = subprocess.run([DONJON, "token", *args], env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


def test_token_mode_sign_in(browser: Browser, token_server: LiveServer) -> None:
    token = _donjon_token(token_server, "create", "--project", "tok-project", "--user", "tess", "--role", "member")
    c = Console(browser, token_server.url)
    try:
        page = c.page()
        expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
        page.get_by_role("textbox", name="donjon token").fill("djt_" + "0" * 32 + "_" + "x" * 43)
        page.get_by_role("button", name="Sign in").click()
        expect(page.get_by_role("alert")).to_contain_text("401 Unauthorized")
        page.get_by_role("textbox", name="donjon token").fill(token)
        page.get_by_role("button", name="Sign in").click()
        expect(page.get_by_role("heading", name="Secrets", exact=True)).to_be_visible()
        expect(page.locator(".identity")).to_have_text("tess · tok-project · member")
        assert page.get_by_role("textbox", name="donjon token").count() == 0
        assert token not in page.content() and token not in page.url
        assert page.evaluate("[localStorage.length, sessionStorage.length, document.cookie]") == [0, 0, ""]
        page.reload()  # the token lived in the page's memory: gone with it
        expect(page.get_by_role("heading", name="Sign in")).to_be_visible()

        # A token revoked while in use: the next request's 401 ends the session, and says so.
        page.get_by_role("textbox", name="donjon token").fill(token)
        page.get_by_role("button", name="Sign in").click()
        expect(page.get_by_role("heading", name="Secrets", exact=True)).to_be_visible()
        _donjon_token(token_server, "revoke", str(uuid.UUID(token.split("_")[1])))
        page.get_by_role("link", name="Orders").click()
        expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
        expect(page.get_by_text("Your session has ended: sign in again.")).to_be_visible()
    finally:
        c.close()
    assert c.problems == []


# ---- keystone mode ----


def test_keystone_mode_sign_in_with_a_password_and_with_a_token(
    browser: Browser, keystone: Keystone, keystone_donjon: LiveServer
) -> None:
    user = keystone.users["a-member"]
    c = Console(browser, keystone_donjon.url)
    try:
        page = c.page()
        form = page.get_by_role("form", name="Sign in with a Keystone password")
        form.get_by_label("User name").fill(user.name)
        form.get_by_label("Password", exact=True).fill("wrong-password")
        form.get_by_label("Project", exact=True).fill(keystone.project("A"))
        form.get_by_role("button", name="Sign in").click()
        expect(page.get_by_role("alert")).to_contain_text(
            "401 Unauthorized: Keystone refused these credentials for this project."
        )
        shot(page, "signin-keystone")
        form.get_by_label("Password", exact=True).fill(user.password)
        with page.expect_response("**/ui/api/keystone/tokens") as signed_in:
            form.get_by_role("button", name="Sign in").click()
        token = signed_in.value.json()["token"]
        expect(page.get_by_role("heading", name="Secrets", exact=True)).to_be_visible()
        who = rf"^{user.name} · {keystone.project('A')} · (member, reader|reader, member)$"  # Keystone's order
        expect(page.locator(".identity")).to_have_text(re.compile(who))
        page.get_by_role("link", name="New secret").click()
        form = page.get_by_role("form", name="Store a value")
        form.get_by_label("Name").fill("from-keystone")
        form.get_by_label("Value", exact=True).fill(SENTINEL + "ks")
        form.get_by_role("button", name="Store the secret").click()
        expect(page.get_by_role("heading", name="from-keystone")).to_be_visible()
        expect(page.locator(".props").first).to_contain_text(user.id)  # the creator is the Keystone user
        assert _keystone_knows(keystone, token)
        sign_out(page)
        assert not _keystone_knows(keystone, token)  # the token the console asked for is revoked

        # A token from Keystone itself (another project's member): pasted, checked, used.
        page.get_by_role("textbox", name="Keystone token").fill(keystone.issue("b-member"))
        page.get_by_role("textbox", name="Keystone token").press("Enter")
        expect(page.get_by_role("heading", name="Secrets", exact=True)).to_be_visible()
        expect(page.locator(".identity")).to_contain_text(keystone.project_id("B"))
        expect(page.get_by_role("link", name="from-keystone")).to_have_count(0)
        assert page.evaluate("[localStorage.length, sessionStorage.length, document.cookie]") == [0, 0, ""]
    finally:
        c.close()
    assert c.problems == []
    assert user.password.encode() not in keystone_donjon.log.read_bytes()


def _keystone_knows(keystone: Keystone, token: str) -> bool:
    headers = {"X-Auth-Token": keystone.token("sys-admin", "system"), "X-Subject-Token": token}
    return httpx.get(f"{keystone.url}/auth/tokens", headers=headers, timeout=30).status_code == 200


def test_keystone_sign_in_endpoint(keystone: Keystone, keystone_donjon: LiveServer) -> None:
    user = keystone.users["a-reader"]
    url = keystone_donjon.url + "/ui/api/keystone/tokens"
    body = {"username": user.name, "password": user.password, "project": keystone.project("A")}
    r = httpx.post(url, json=body, timeout=30)
    assert r.status_code == 201, r.text
    assert r.headers["cache-control"] == "no-store"
    answer = r.json()
    assert answer["project_id"] == keystone.project_id("A") and answer["user_id"] == user.id
    assert answer["roles"] == ["reader"] and answer["user_name"] == user.name
    # The token is Keystone's own: donjon and Keystone both accept it.
    token = answer["token"]
    quotas = httpx.get(keystone_donjon.url + "/v1/quotas", headers={"X-Auth-Token": token}, timeout=30)
    assert quotas.status_code == 200
    # Sign-out revokes it in Keystone; a second sign-out finds nothing left to revoke.
    for _ in range(2):
        r = httpx.delete(url, headers={"X-Auth-Token": token}, timeout=30)
        assert r.status_code == 204, r.text
    assert not _keystone_knows(keystone, token)
    assert httpx.delete(url, headers={"X-Auth-Token": "not a token"}, timeout=30).status_code == 401
    refused = [
        {**body, "password": "nope"},
        {**body, "project": keystone.project("B")},  # a user without a role there
        {**body, "user_domain": "no-such-domain"},
    ]
    for bad in refused:
        r = httpx.post(url, json=bad, timeout=30)
        assert r.status_code == 401, r.text
        assert r.json()["description"] == "Keystone refused these credentials for this project."
    for bad in [{}, {**body, "password": ""}, {**body, "username": 5}, [body]]:
        r = httpx.post(url, json=bad, timeout=30)
        assert r.status_code == 400, r.text
    assert user.password.encode() not in keystone_donjon.log.read_bytes()
    assert token.encode() not in keystone_donjon.log.read_bytes()
