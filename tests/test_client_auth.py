"""The ``donjon`` backend's three ways to authenticate, each against a live server in that mode:
donjon tokens (``X-Auth-Token``) and a keystoneauth1 session on a real Keystone (dev headers: every other
client test)."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from donjon.client import NotFound, Passphrase, SymmetricKey, Unauthorized, open_key_manager
from tests.live_server import LiveServer

if TYPE_CHECKING:
    from tests.components.keystone import Keystone

pytestmark = pytest.mark.live
DONJON = str(Path(sys.executable).with_name("donjon"))


@pytest.fixture(scope="module")
def token_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    server = LiveServer(tmp_path_factory.mktemp("token-live"), env={"DONJON_AUTH": "token"}, dev=False, workers=1)
    server.start()
    yield server
    server.stop()


def issue(server: LiveServer, project: str) -> str:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DONJON_")}
    env.update(DONJON_AUTH="token", DONJON_DATA_DIR=str(server.data_dir))
    result = subprocess.run(
        [DONJON, "token", "create", "--project", project, "--role", "member", "--ttl", "1h"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


def test_donjon_token(token_server: LiveServer) -> None:
    token = issue(token_server, "tok-a")
    with open_key_manager({"type": "donjon", "url": token_server.url, "token": token}) as km:
        key_id = km.create_key(bit_length=128, name="tok")
        assert isinstance(km.get(key_id), SymmetricKey)
        assert [i.id for i in km.list()] == [key_id]
    other = issue(token_server, "tok-b")
    with open_key_manager({"type": "donjon", "url": token_server.url, "token": other}) as km:
        with pytest.raises(NotFound):
            km.get(key_id)
    with open_key_manager({"type": "donjon", "url": token_server.url, "token": "djt_wrong"}) as km:
        with pytest.raises(Unauthorized) as caught:
            list(km.list())
        assert "djt_wrong" not in str(caught.value)


def _session(keystone: Keystone, user: str, password: str | None = None) -> object:
    from keystoneauth1 import session
    from keystoneauth1.identity import v3

    u = keystone.users[user]
    auth = v3.Password(
        auth_url=keystone.url,
        username=u.name,
        password=password or u.password,
        user_domain_id="default",
        project_name=u.project,
        project_domain_id="default",
    )
    return session.Session(auth=auth)


def test_keystone_session_with_the_catalog(keystone: Keystone, keystone_donjon: LiveServer) -> None:
    # No url: the key-manager endpoint comes from Keystone's catalog.
    with open_key_manager({"type": "donjon", "session": _session(keystone, "a-member")}) as km:
        assert km.api.url == keystone.donjon_url  # type: ignore[attr-defined]
        secret_id = km.store(Passphrase(data=b"from keystone", name="ks"))
        assert km.get(secret_id).data == b"from keystone"
        km.delete(secret_id)


def test_keystone_wrong_password_is_unauthorized(keystone: Keystone, keystone_donjon: LiveServer) -> None:
    session = _session(keystone, "a-member", password="not-the-password")
    with open_key_manager({"type": "donjon", "url": keystone.donjon_url, "session": session}) as km:
        with pytest.raises(Unauthorized):
            list(km.list())


def test_castellan_driver_with_keystone_auth(keystone: Keystone, keystone_donjon: LiveServer) -> None:
    """``[donjon] auth = keystone``: each call as the request context's user, endpoint from the catalog."""
    from castellan import key_manager
    from castellan.common.objects import symmetric_key
    from keystoneauth1.identity import v3
    from oslo_config import cfg
    from oslo_context import context as oslo_context

    class Context(oslo_context.RequestContext):  # type: ignore[misc]
        def __init__(self, plugin: object) -> None:
            super().__init__()
            self.plugin = plugin

        def get_auth_plugin(self) -> object:
            return self.plugin

    u = keystone.users["a-member"]
    plugin = v3.Password(
        auth_url=keystone.url,
        username=u.name,
        password=u.password,
        user_domain_id="default",
        project_name=u.project,
        project_domain_id="default",
    )
    conf = cfg.ConfigOpts()
    conf([], project="castellan-keystone", default_config_files=[], default_config_dirs=[])
    conf.register_opts(key_manager.key_manager_opts, group="key_manager")
    conf.set_override("backend", "donjon", group="key_manager")
    api = key_manager.API(conf)
    key = symmetric_key.SymmetricKey("AES", 128, os.urandom(16), name="ks-castellan")
    key_id = api.store(Context(plugin), key)
    assert api.get(Context(plugin), key_id).get_encoded() == key.get_encoded()
    api.delete(Context(plugin), key_id)
