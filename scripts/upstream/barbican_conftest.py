"""conftest.py for Barbican 23.0.0's functionaltests, run against an unauthenticated server (scripts/upstream-suites).

Upstream's suite logs each test user into Keystone (devstack's users, functionaltests/common/auth.py) and
sends the token. Against a server in Barbican's unauthenticated mode (donjon --dev, or Barbican's noauth
pipeline) the same users are named by the headers that mode trusts instead: X-Project-Id, X-User-Id and
X-Roles, with the project and role devstack gives each of them (barbican's devstack/lib/barbican). Nothing
else of the suite is changed; tests that send no credentials and expect Keystone's 401 fail here.
"""

import os
import uuid

from functionaltests.common import config

# Read before any test module imports functionaltests.common.client (it reads the configuration on import).
config.setup_config(os.environ["UPSTREAM_FUNCTIONAL_CONF"])

from functionaltests.common import auth  # noqa: E402

# user -> (project, role), as devstack's barbican plugin creates them
USERS = {
    "admin": ("admin", "admin"),
    "service-admin": ("service", "key-manager:service-admin"),
    "project_a_admin": ("project_a", "admin"),
    "project_a_creator": ("project_a", "creator"),
    "project_a_creator_2": ("project_a", "creator"),
    "project_a_observer": ("project_a", "observer"),
    "project_a_auditor": ("project_a", "audit"),
    "project_b_admin": ("project_b", "admin"),
    "project_b_creator": ("project_b", "creator"),
    "project_b_observer": ("project_b", "observer"),
    "project_b_auditor": ("project_b", "audit"),
}


def _user_id(name):
    # Keystone's user ids are not their names, and some tests rely on it: test_secret_acl_auditor_with_acl_cannot_read
    # puts the auditor's *name* in an ACL and expects 403, which holds only while the name never matches the id.
    return uuid.uuid5(uuid.NAMESPACE_URL, "upstream-suites:" + name).hex


def _authenticate(self):
    project, _ = USERS[self.username]
    return {"token": None, "project_id": project, "service_catalog": None, "user_id": _user_id(self.username)}


def _sign(self, request):
    project, role = USERS[self.username]
    request.headers["X-Project-Id"] = project
    request.headers["X-User-Id"] = _user_id(self.username)
    request.headers["X-Roles"] = role
    return request


auth.FunctionalTestAuth.authenticate = _authenticate
auth.FunctionalTestAuth.__call__ = _sign
