"""conftest.py for python-barbicanclient 7.6.0's functionaltests against an unauthenticated server
(scripts/upstream-suites).

Upstream's suite logs into Keystone (a keystoneauth1 Password plugin for the library, --os-* options for the
CLI). Against a server in Barbican's unauthenticated mode the library is given no auth plugin, so
barbicanclient sends X-Project-Id itself (its documented non-authenticated session), and the CLI gets
``--no-auth --os-project-id``; every request is the configured project's admin, as upstream's admin user.
test_client_connectivity.py is about Keystone (catalog, bad credentials) and fails without it.
"""

import os

from functionaltests.common import config

config.setup_config(os.environ["UPSTREAM_FUNCTIONAL_CONF"])
CONF = config.get_config()

from functionaltests.cli.v1.behaviors import base_behaviors  # noqa: E402
from functionaltests.client import base as client_base  # noqa: E402


class _NoKeystone:
    @staticmethod
    def Password(**kwargs):  # noqa: N802 (keystoneauth1.identity.Password's name)
        return None  # a Session without auth: barbicanclient then needs endpoint and project_id, and has both


def _add_auth_and_endpoint(self, arg_list):
    arg_list.extend(["--no-auth", "--os-project-id", CONF.keymanager.project_id, "--endpoint", CONF.keymanager.url])


client_base.identity = _NoKeystone
base_behaviors.BaseBehaviors.add_auth_and_endpoint = _add_auth_and_endpoint
