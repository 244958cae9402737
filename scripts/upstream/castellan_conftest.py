"""conftest.py for Castellan 5.8.0's Barbican key-manager functional tests against an unauthenticated server
(scripts/upstream-suites).

Upstream's tests build a context from a Keystone login (three ways: an oslo.context with a token, a
KeystonePassword and a KeystoneToken credential) and Castellan turns it into a keystoneauth1 plugin. Here
every context is the configured project, and Castellan's plugin is one that sends that mode's headers
(X-Project-Id, X-Roles: admin) to the endpoint given by UPSTREAM_ENDPOINT; Castellan's own code, from its
client to its error handling, is unchanged. The three test classes therefore run the same requests.
Their setUp skips the class on any error building the client: a run where everything is skipped is a
broken harness, not a pass.
"""

import os

from castellan.key_manager import barbican_key_manager
from castellan.tests.functional.key_manager import test_barbican_key_manager as tests
from keystoneauth1 import plugin
from oslo_config import cfg
from oslo_context import context

PROJECT = "admin"


class _HeaderAuth(plugin.BaseAuthPlugin):
    """The unauthenticated mode's headers in place of a Keystone token."""

    def __init__(self, project_id):
        super().__init__()
        self.project_id = project_id

    def get_headers(self, session, **kwargs):
        return {"X-Project-Id": self.project_id, "X-Roles": "admin"}


def _get_keystone_auth(self, ctxt):
    return _HeaderAuth(getattr(ctxt, "project_id", None) or PROJECT)


def _get_context(self):
    return context.RequestContext(project_id=PROJECT)


_create = tests.BarbicanKeyManagerTestCase._create_key_manager


def _create_key_manager(self):
    manager = _create(self)
    cfg.CONF.set_override("barbican_endpoint", os.environ["UPSTREAM_ENDPOINT"], "barbican")
    return manager


barbican_key_manager.BarbicanKeyManager._get_keystone_auth = _get_keystone_auth
tests.BarbicanKeyManagerTestCase._create_key_manager = _create_key_manager
for case in (
    tests.BarbicanKeyManagerOsloContextTestCase,
    tests.BarbicanKeyManagerKSPasswordTestCase,
    tests.BarbicanKeyManagerKSTokenTestCase,
):
    case.get_context = _get_context
