"""Default policy rules: Barbican 23's rule names and check strings, in two sets chosen by
``enforce_new_defaults``, as Barbican's own switch selects them.

Barbican writes every endpoint rule as ``True:%(enforce_new_defaults)s and (<secure RBAC>)`` with its legacy
rule as the oslo.policy deprecated rule: with new defaults off the first half is always false, so only the
legacy rule decides (creator, observer, audit, key-manager:service-admin; no reader/member); with them on
only the secure-RBAC rule does. donjon registers the one set the operator chose, which decides the same
without the prefix. The target still carries ``enforce_new_defaults`` (enforcer.py), so a Barbican
``policy.yaml`` whose rules use the prefix behaves here as it does in Barbican.

``tests/test_policy_barbican.py`` checks every rule, in both modes, against Barbican 23's own strings.
Deliberate differences from Barbican (docs/api-compatibility.md):
- ``secret:get``, ``secret:delete`` and ``consumer:get`` do not grant a bare ``role:admin`` (new defaults),
  and legacy ``consumer:get`` does not grant bare ``admin``/``observer``/``creator``/``audit``: an admin of
  one project is not an admin of every project's secrets. Project admins still pass through
  ``secret_project_admin`` / ``container_project_admin``.
- Targets are built by the services from stored rows only, never from request parameters (CVE-2022-3100).
- Every rule is project-scoped, except the cloud-wide ``project_quotas:*`` and ``secretstores:*`` rules,
  which Keystone system-scoped tokens may also pass (Barbican refuses every token without project scope).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from oslo_policy import policy

PROJECT = ["project"]
# Cloud-wide operations, also open to Keystone system-scoped tokens (``role:admin`` on ``system all``), as
# Barbican's secure-RBAC rules of 2021-2023 had them; project-scoped admins keep them as in Barbican today.
PROJECT_OR_SYSTEM = ["project", "system"]


@dataclass(frozen=True)
class Rule:
    """One endpoint rule: its secure-RBAC check string and Barbican's legacy one."""

    name: str
    new: str
    legacy: str
    description: str = ""
    scope_types: list[str] = field(default_factory=lambda: list(PROJECT))

    def default(self, enforce_new_defaults: bool) -> policy.RuleDefault:
        check = self.new if enforce_new_defaults else self.legacy
        return policy.RuleDefault(self.name, check, description=self.description, scope_types=list(self.scope_types))


def _entity_rules(kind: str) -> list[policy.RuleDefault]:
    """The building blocks Barbican defines for secrets and containers (base.py), same in both modes."""
    t = f"target.{kind}"
    return [
        policy.RuleDefault(f"{kind}_project_match", f"project_id:%({t}.project_id)s"),
        policy.RuleDefault(f"{kind}_project_reader", f"role:reader and rule:{kind}_project_match"),
        policy.RuleDefault(f"{kind}_project_member", f"role:member and rule:{kind}_project_match"),
        policy.RuleDefault(f"{kind}_project_admin", f"role:admin and rule:{kind}_project_match"),
        policy.RuleDefault(f"{kind}_owner", f"user_id:%({t}.creator_id)s"),
        policy.RuleDefault(f"{kind}_is_not_private", f"True:%({t}.read_project_access)s"),
        policy.RuleDefault(f"{kind}_acl_read", f"'read':%({t}.read)s"),
        # legacy building blocks
        policy.RuleDefault(f"{kind}_creator_user", f"user_id:%({t}.creator_id)s"),
        policy.RuleDefault(f"{kind}_private_read", f"'False':%({t}.read_project_access)s"),
        policy.RuleDefault(
            f"{kind}_non_private_read",
            f"rule:all_users and rule:{kind}_project_match and not rule:{kind}_private_read",
        ),
        policy.RuleDefault(
            f"{kind}_project_creator",
            f"rule:creator and rule:{kind}_project_match and rule:{kind}_creator_user",
        ),
        policy.RuleDefault(f"{kind}_project_creator_role", f"rule:creator and rule:{kind}_project_match"),
    ]


def _member_or_admin(kind: str) -> str:
    """Barbican's secure-RBAC "M": the project admin, the owner, or any member when the entity is not private."""
    return (
        f"rule:{kind}_project_admin or (rule:{kind}_project_member and rule:{kind}_owner) or "
        f"(rule:{kind}_project_member and rule:{kind}_is_not_private)"
    )


def _with_acl(kind: str) -> str:
    return f"{_member_or_admin(kind)} or rule:{kind}_acl_read"


def _legacy_read(kind: str) -> str:
    return (
        f"rule:{kind}_non_private_read or rule:{kind}_project_creator or rule:{kind}_project_admin or "
        f"rule:{kind}_acl_read"
    )


def _legacy_write(kind: str) -> str:
    return (
        f"rule:{kind}_project_admin or rule:{kind}_project_creator or "
        f"(rule:{kind}_project_creator_role and rule:{kind}_non_private_read)"
    )


BASE = [
    *_entity_rules("secret"),
    *_entity_rules("container"),
    policy.RuleDefault(
        "secret_decrypt_non_private_read",
        "rule:all_but_audit and rule:secret_project_match and not rule:secret_private_read",
    ),
    policy.RuleDefault("order_project_match", "project_id:%(target.order.project_id)s"),
    policy.RuleDefault("order_project_member", "role:member and rule:order_project_match"),
    policy.RuleDefault("audit", "role:audit"),
    policy.RuleDefault("observer", "role:observer"),
    policy.RuleDefault("creator", "role:creator"),
    policy.RuleDefault("admin", "role:admin"),
    policy.RuleDefault("service_admin", "role:key-manager:service-admin"),
    policy.RuleDefault("all_users", "rule:admin or rule:observer or rule:creator or rule:audit or rule:service_admin"),
    policy.RuleDefault("all_but_audit", "rule:admin or rule:observer or rule:creator"),
    policy.RuleDefault("admin_or_creator", "rule:admin or rule:creator"),
]

S, C = "secret", "container"

ENDPOINTS = [
    # secrets
    Rule("secrets:post", "role:member", "rule:admin_or_creator", "Create a secret."),
    Rule("secrets:get", "role:member", "rule:all_but_audit", "List the project's secrets."),
    Rule("secret:get", _with_acl(S), _legacy_read(S), "Read a secret's metadata."),
    Rule(
        "secret:decrypt",
        _with_acl(S),
        "rule:secret_decrypt_non_private_read or rule:secret_project_creator or rule:secret_project_admin or "
        "rule:secret_acl_read",
        "Read a secret's payload.",
    ),
    Rule("secret:put", _member_or_admin(S), "rule:admin_or_creator and rule:secret_project_match", "Add a payload."),
    Rule(
        "secret:delete",
        _member_or_admin(S),
        "rule:secret_project_admin or rule:secret_project_creator or "
        "(rule:secret_project_creator_role and not rule:secret_private_read)",
        "Delete a secret.",
    ),
    Rule("secret_meta:get", _with_acl(S), _legacy_read(S)),
    *(Rule(f"secret_meta:{op}", _member_or_admin(S), _legacy_write(S)) for op in ("post", "put", "delete")),
    *(Rule(f"secret_consumers:{op}", _with_acl(S), _legacy_read(S)) for op in ("get", "post", "delete")),
    Rule("secret_acls:get", _member_or_admin(S), "rule:all_but_audit and rule:secret_project_match"),
    *(Rule(f"secret_acls:{op}", _member_or_admin(S), _legacy_write(S)) for op in ("put_patch", "delete")),
    # containers
    Rule("containers:post", "role:member", "rule:admin_or_creator"),
    Rule("containers:get", "role:member", "rule:all_but_audit"),
    Rule("container:get", _with_acl(C), _legacy_read(C)),
    Rule("container:delete", _member_or_admin(C), "rule:container_project_admin or rule:container_project_creator"),
    *(Rule(f"container_secret:{op}", _member_or_admin(C), _legacy_write(C)) for op in ("post", "delete")),
    *(Rule(f"container_consumers:{op}", _with_acl(C), _legacy_read(C)) for op in ("get", "post", "delete")),
    Rule("consumer:get", _with_acl(C), _legacy_read(C)),
    Rule("container_acls:get", _member_or_admin(C), "rule:all_but_audit and rule:container_project_match"),
    *(Rule(f"container_acls:{op}", _member_or_admin(C), _legacy_write(C)) for op in ("put_patch", "delete")),
    # orders
    Rule("orders:get", "role:member", "rule:all_but_audit"),
    Rule("orders:post", "role:member", "rule:admin_or_creator"),
    Rule("orders:put", "role:member", "rule:admin_or_creator"),
    Rule("order:get", "rule:order_project_member", "rule:all_users and project_id:%(target.order.project_id)s"),
    Rule("order:delete", "rule:order_project_member", "rule:admin and project_id:%(target.order.project_id)s"),
    # quotas
    Rule("quotas:get", "role:reader", "rule:all_users"),
    *(
        Rule(f"project_quotas:{op}", "role:admin", "rule:service_admin", scope_types=PROJECT_OR_SYSTEM)
        for op in ("get", "put", "delete")
    ),
    # secret stores
    *(
        Rule(name, "role:reader", "rule:all_users", scope_types=PROJECT_OR_SYSTEM)
        for name in (
            "secretstores:get",
            "secretstores:get_global_default",
            "secretstores:get_preferred",
            "secretstore:get",
        )
    ),
    *(Rule(f"secretstore_preferred:{op}", "role:admin", "rule:admin") for op in ("post", "delete")),
    # transport keys (api/transport_keys.py)
    Rule("transport_keys:get", "role:reader", "rule:all_users"),
    Rule("transport_key:get", "role:reader", "rule:all_users"),
    Rule("transport_keys:post", "role:admin", "rule:service_admin"),
    Rule("transport_key:delete", "role:admin", "rule:service_admin"),
    # donjon extension: the project's audit records and the chain's verification (/v1/audit/*)
    Rule("audit:get", "role:admin", "rule:admin or rule:audit", "Read the project's audit records."),
]


def defaults(enforce_new_defaults: bool) -> list[policy.RuleDefault]:
    """Every rule donjon registers: the building blocks, then each endpoint rule in the chosen mode."""
    return [*BASE, *(rule.default(enforce_new_defaults) for rule in ENDPOINTS)]
