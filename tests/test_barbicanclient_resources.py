"""Unmodified python-barbicanclient for containers, orders, ACLs and consumers against a live donjon process."""

from __future__ import annotations

import time
import uuid
from pathlib import Path
from typing import Any

import pytest
from barbicanclient import exceptions as barbican_errors
from barbicanclient.v1 import containers
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from tests.live_server import LiveServer
from tests.test_barbicanclient import cli, cli_json, lib

pytestmark = pytest.mark.live


def wait_active(client: Any, order_ref: str, timeout: float = 30.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        order = client.orders.get(order_ref)
        if order.status != "PENDING":
            return order
        assert time.monotonic() < deadline, "order still PENDING"
        time.sleep(0.1)


# --- library --------------------------------------------------------------------------------------------


def test_library_containers_of_every_type(live_server: LiveServer) -> None:
    c = lib(live_server, f"lib-{uuid.uuid4()}")
    one = c.secrets.create(name="one", payload="1")
    two = c.secrets.create(name="two", payload="2")
    generic = c.containers.create(name="bundle", secrets={"first": one, "second": two})
    generic_ref = generic.store()

    fetched = c.containers.get(generic_ref)
    assert fetched.name == "bundle"
    assert type(fetched) is containers.Container
    assert {name: s.payload for name, s in fetched.secrets.items()} == {"first": "1", "second": "2"}

    cert = c.secrets.create(name="cert", payload="-----BEGIN CERTIFICATE-----\nMIIB\n", secret_type="certificate")
    key = c.secrets.create(name="key", payload="-----BEGIN PRIVATE KEY-----\nMIIE\n", secret_type="private")
    cert_ref = c.containers.create_certificate(name="tls", certificate=cert, private_key=key).store()
    tls = c.containers.get(cert_ref)
    assert isinstance(tls, containers.CertificateContainer)
    assert tls.certificate.name == "cert" and tls.private_key.name == "key"

    pub = c.secrets.create(name="pub", payload="public", secret_type="public")
    priv = c.secrets.create(name="priv", payload="private", secret_type="private")
    rsa_ref = c.containers.create_rsa(name="pair", public_key=pub, private_key=priv).store()
    assert isinstance(c.containers.get(rsa_ref), containers.RSAContainer)

    listed = c.containers.list(limit=10)
    assert {x.container_ref for x in listed} == {generic_ref, cert_ref, rsa_ref}
    assert [x.name for x in c.containers.list(name="tls")] == ["tls"]
    assert [x.name for x in c.containers.list(type="rsa")] == ["pair"]

    c.containers.delete(generic_ref)
    with pytest.raises(barbican_errors.HTTPClientError) as info:
        c.containers.get(generic_ref).name  # noqa: B018 - the lazy fetch is the call under test
    assert info.value.status_code == 404
    # Deleting a container leaves its secrets.
    assert c.secrets.get(one.secret_ref).payload == "1"


def test_library_container_consumers(live_server: LiveServer) -> None:
    c = lib(live_server, f"lib-{uuid.uuid4()}")
    ref = c.containers.create(name="lb-cert", secrets={}).store()
    container = c.containers.register_consumer(ref, "lbaas", "https://lb.example/1")
    assert container.consumers == [{"name": "lbaas", "URL": "https://lb.example/1"}]
    c.containers.register_consumer(ref, "lbaas", "https://lb.example/2")
    assert len(c.containers.get(ref).consumers) == 2
    c.containers.remove_consumer(ref, "lbaas", "https://lb.example/1")
    assert c.containers.get(ref).consumers == [{"name": "lbaas", "URL": "https://lb.example/2"}]


def test_library_key_order(live_server: LiveServer) -> None:
    c = lib(live_server, f"lib-{uuid.uuid4()}")
    order_ref = c.orders.create_key(name="volume key", algorithm="aes", bit_length=256, mode="xts").submit()
    order = wait_active(c, order_ref)
    assert order.status == "ACTIVE"
    assert (order.name, order.algorithm, order.bit_length, order.mode) == ("volume key", "aes", 256, "xts")
    secret = c.secrets.get(order.secret_ref)
    assert secret.secret_type == "symmetric"
    assert len(secret.payload) == 32
    assert [o.order_ref for o in c.orders.list()] == [order_ref]
    c.orders.delete(order_ref)
    assert c.orders.list() == []
    assert c.secrets.get(order.secret_ref).name == "volume key"


def test_library_asymmetric_order_with_the_clients_pass_phrase(live_server: LiveServer) -> None:
    c = lib(live_server, f"lib-{uuid.uuid4()}")
    order_ref = c.orders.create_asymmetric(
        name="signing", algorithm="rsa", bit_length=2048, pass_phrase="client phrase"
    ).submit()
    order = wait_active(c, order_ref)
    assert order.status == "ACTIVE", getattr(order, "error_reason", None)
    container = c.containers.get(order.container_ref)
    assert isinstance(container, containers.RSAContainer)
    private_pem = container.private_key.payload
    assert isinstance(serialization.load_pem_private_key(private_pem, password=b"client phrase"), rsa.RSAPrivateKey)
    assert container.private_key_passphrase.payload == "client phrase"


def test_library_failed_order_reports_its_error(live_server: LiveServer) -> None:
    c = lib(live_server, f"lib-{uuid.uuid4()}")
    order = wait_active(c, c.orders.create_key(name="bad", algorithm="aes", bit_length=136).submit())
    assert order.status == "ERROR"
    assert order.error_status_code == "400"
    assert order.error_reason.startswith("Process TypeOrder issue seen")


def test_library_acls_let_another_projects_user_read(live_server: LiveServer) -> None:
    owner = lib(live_server, f"lib-{uuid.uuid4()}", user="owner")
    ref = owner.secrets.create(name="shared", payload="for bob").store()
    bob = lib(live_server, f"lib-{uuid.uuid4()}", user="bob")
    with pytest.raises(barbican_errors.HTTPClientError):
        bob.secrets.get(ref).payload  # noqa: B018

    acl = owner.acls.create(entity_ref=ref, users=["bob"], project_access=False)
    acl.submit()
    fetched = owner.acls.get(ref)
    assert fetched.read.users == ["bob"]
    assert fetched.read.project_access is False
    assert bob.secrets.get(ref).payload == "for bob"
    # project-access false: the owner's project colleagues no longer read it, the creator still does.
    colleague = lib(live_server, owner.client._default_headers["X-Project-Id"], user="colleague")
    colleague.client._default_headers["X-Roles"] = "member"
    with pytest.raises(barbican_errors.HTTPClientError) as info:
        colleague.secrets.get(ref).payload  # noqa: B018
    assert info.value.status_code == 403
    assert owner.secrets.get(ref).payload == "for bob"

    owner.acls.get(ref).remove()
    with pytest.raises(barbican_errors.HTTPClientError):
        lib(live_server, f"lib-{uuid.uuid4()}", user="bob").secrets.get(ref).payload  # noqa: B018
    assert owner.acls.get(ref).read.users == []


def test_library_container_acl(live_server: LiveServer) -> None:
    owner = lib(live_server, f"lib-{uuid.uuid4()}", user="owner")
    ref = owner.containers.create(name="shared", secrets={}).store()
    acl = owner.acls.create(entity_ref=ref, users=["carol"])
    acl.submit()
    carol = lib(live_server, f"lib-{uuid.uuid4()}", user="carol")
    assert carol.containers.get(ref).name == "shared"


# --- CLI ------------------------------------------------------------------------------------------------


def test_cli_container_create_get_list_delete(live_server: LiveServer) -> None:
    project = f"cli-{uuid.uuid4()}"
    cert = cli_json(live_server, project, "secret", "store", "-n", "cert", "-p", "CERT", "-s", "certificate")
    key = cli_json(live_server, project, "secret", "store", "-n", "key", "-p", "KEY", "-s", "private")
    created = cli_json(
        live_server,
        project,
        "secret",
        "container",
        "create",
        "-n",
        "tls",
        "--type",
        "certificate",
        "-s",
        f"certificate={cert['Secret href']}",
        "-s",
        f"private_key={key['Secret href']}",
    )
    ref = created["Container href"]
    # The client cannot JSON-format the Created column (a datetime): ask for the other columns only.
    columns = ["-c", "Name", "-c", "Type", "-c", "Certificate"]
    got = cli_json(live_server, project, "secret", "container", "get", ref, *columns)
    assert got["Name"] == "tls" and got["Type"] == "certificate"
    assert cert["Secret href"] in got["Certificate"]
    listed = cli_json(live_server, project, "secret", "container", "list", "-c", "Container href")
    assert [row["Container href"] for row in listed] == [ref]
    assert cli(live_server, project, "secret", "container", "delete", ref).returncode == 0
    empty = cli(live_server, project, "secret", "container", "list", "-f", "value")
    assert (empty.returncode, empty.stdout) == (0, b"")


def test_cli_container_with_an_invisible_secret_is_refused(live_server: LiveServer) -> None:
    other = cli_json(live_server, f"cli-{uuid.uuid4()}", "secret", "store", "-n", "theirs", "-p", "x")
    project = f"cli-{uuid.uuid4()}"
    done = cli(live_server, project, "secret", "container", "create", "-n", "c", "-s", f"a={other['Secret href']}")
    assert done.returncode != 0
    assert cli_json(live_server, project, "secret", "container", "list") == []


def test_cli_orders(live_server: LiveServer, tmp_path: Path) -> None:
    project = f"cli-{uuid.uuid4()}"
    created = cli_json(
        live_server, project, "secret", "order", "create", "key", "-n", "k", "-a", "aes", "-b", "256", "-m", "cbc"
    )
    ref = created["Order href"]
    deadline = time.monotonic() + 30
    while (got := cli_json(live_server, project, "secret", "order", "get", ref))["Status"] == "PENDING":
        assert time.monotonic() < deadline
        time.sleep(0.2)
    assert got["Status"] == "ACTIVE"
    assert got["Secret href"].startswith(live_server.url + "/v1/secrets/")
    out = tmp_path / "key.bin"
    fetched = cli(
        live_server, project, "secret", "get", got["Secret href"], "-F", str(out), "-t", "application/octet-stream"
    )
    assert fetched.returncode == 0, fetched.stderr.decode()
    assert len(out.read_bytes()) == 32

    pair = cli_json(live_server, project, "secret", "order", "create", "asymmetric", "-a", "rsa", "-b", "2048")
    listed = cli_json(live_server, project, "secret", "order", "list")
    assert {row["Order href"] for row in listed} == {ref, pair["Order href"]}
    assert cli(live_server, project, "secret", "order", "delete", ref).returncode == 0
    assert [row["Order href"] for row in cli_json(live_server, project, "secret", "order", "list")] == [
        pair["Order href"]
    ]


def test_cli_acl_user_add_get_remove_delete(live_server: LiveServer) -> None:
    project = f"cli-{uuid.uuid4()}"
    ref = cli_json(live_server, project, "secret", "store", "-n", "shared", "-p", "value")["Secret href"]
    added = cli_json(live_server, project, "acl", "user", "add", "-u", "dave", "-u", "erin", ref)
    [read] = added
    assert read["Operation Type"] == "read"
    assert sorted(read["Users"]) == ["dave", "erin"]
    assert read["Project Access"] is True

    cli_json(live_server, project, "acl", "submit", "-u", "dave", "--no-project-access", ref)
    [read] = cli_json(live_server, project, "acl", "get", ref)
    assert (read["Users"], read["Project Access"]) == (["dave"], False)

    [read] = cli_json(live_server, project, "acl", "user", "remove", "-u", "dave", ref)
    assert read["Users"] == []
    assert cli(live_server, project, "acl", "delete", ref).returncode == 0
    [read] = cli_json(live_server, project, "acl", "get", ref)
    assert (read["Users"], read["Project Access"]) == ([], True)


def test_cli_secret_consumers(live_server: LiveServer) -> None:
    project = f"cli-{uuid.uuid4()}"
    ref = cli_json(live_server, project, "secret", "store", "-n", "used", "-p", "v")["Secret href"]
    consumer = ["-s", "image", "-t", "image", "-i", "img-7"]
    done = cli(live_server, project, "secret", "consumer", "create", *consumer, ref)
    assert done.returncode == 0, done.stderr.decode()
    listed = cli_json(live_server, project, "secret", "consumer", "list", ref)
    assert [(r["Service"], r["Resource type"], r["Resource id"]) for r in listed] == [("image", "image", "img-7")]
    assert cli(live_server, project, "secret", "delete", ref).returncode != 0, "deleted a secret in use"
    assert cli(live_server, project, "secret", "consumer", "delete", *consumer, ref).returncode == 0
    assert cli_json(live_server, project, "secret", "consumer", "list", ref) == []
    assert cli(live_server, project, "secret", "delete", ref).returncode == 0
