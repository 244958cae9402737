"""Default policy rules: Barbican's rule names and check strings (secure RBAC), with its legacy rules as
oslo.policy deprecated rules, so operators who set ``enforce_new_defaults = false`` get the legacy roles
(creator, observer, audit, key-manager:service-admin) ORed in exactly as Barbican's operators do.

Deliberate differences from Barbican (docs/api-compatibility.md, "Who may do what"):
- ``secret:get``, ``secret:delete`` and ``consumer:get`` do not grant a bare ``role:admin``: an admin of
  one project is not an admin of every project's secrets. Project admins still pass through
  ``secret_project_admin``.
- No ``True:%(enforce_new_defaults)s`` prefix hack: with new defaults off, new OR legacy applies.
- Targets are built by the services from stored rows only, never from request parameters (CVE-2022-3100).
- Every rule is project-scoped, except the cloud-wide ``project_quotas:*`` and ``secretstores:*`` rules,
  which Keystone system-scoped tokens may also pass (Barbican refuses every token without project scope).
"""

from __future__ import annotations

import re
from pathlib import Path

from oslo_policy import policy

_REASON = "Barbican's legacy roles (creator, observer, audit) are replaced by reader/member/admin."
_SINCE = "donjon 0.1"


PROJECT = ["project"]
# Cloud-wide operations, also open to Keystone system-scoped tokens (``role:admin`` on ``system all``), as
# Barbican's secure-RBAC rules of 2021-2023 had them; project-scoped admins keep them as in Barbican today.
PROJECT_OR_SYSTEM = ["project", "system"]


def _rule(
    name: str, check: str, legacy: str | None = None, description: str = "", scope_types: list[str] = PROJECT
) -> policy.RuleDefault:
    deprecated = (
        policy.DeprecatedRule(name, legacy, deprecated_reason=_REASON, deprecated_since=_SINCE)
        if legacy is not None and legacy != check
        else None
    )
    return policy.RuleDefault(
        name, check, description=description, deprecated_rule=deprecated, scope_types=list(scope_types)
    )


def _entity_rules(kind: str) -> list[policy.RuleDefault]:
    """The building blocks Barbican defines for secrets and containers."""
    t = f"target.{kind}"
    return [
        policy.RuleDefault(f"{kind}_project_match", f"project_id:%({t}.project_id)s"),
        policy.RuleDefault(f"{kind}_project_member", f"role:member and rule:{kind}_project_match"),
        policy.RuleDefault(f"{kind}_project_admin", f"role:admin and rule:{kind}_project_match"),
        policy.RuleDefault(f"{kind}_owner", f"user_id:%({t}.creator_id)s"),
        policy.RuleDefault(f"{kind}_is_not_private", f"True:%({t}.read_project_access)s"),
        policy.RuleDefault(f"{kind}_acl_read", f"'read':%({t}.read)s"),
        # legacy building blocks
        policy.RuleDefault(f"{kind}_private_read", f"'False':%({t}.read_project_access)s"),
        policy.RuleDefault(
            f"{kind}_non_private_read",
            f"rule:all_users and rule:{kind}_project_match and not rule:{kind}_private_read",
        ),
        policy.RuleDefault(
            f"{kind}_decrypt_non_private_read",
            f"rule:all_but_audit and rule:{kind}_project_match and not rule:{kind}_private_read",
        ),
        policy.RuleDefault(
            f"{kind}_project_creator", f"role:creator and rule:{kind}_project_match and rule:{kind}_owner"
        ),
        policy.RuleDefault(f"{kind}_project_creator_role", f"role:creator and rule:{kind}_project_match"),
    ]


def _member_or_admin(kind: str) -> str:
    """Barbican's "M": the project admin, the owner, or any member when the entity is not private."""
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
    policy.RuleDefault("admin", "role:admin"),
    policy.RuleDefault("observer", "role:observer"),
    policy.RuleDefault("creator", "role:creator"),
    policy.RuleDefault("audit", "role:audit"),
    policy.RuleDefault("service_admin", "role:key-manager:service-admin"),
    policy.RuleDefault("all_users", "rule:admin or rule:observer or rule:creator or rule:audit or rule:service_admin"),
    policy.RuleDefault("all_but_audit", "rule:admin or rule:observer or rule:creator"),
    policy.RuleDefault("admin_or_creator", "rule:admin or rule:creator"),
    *_entity_rules("secret"),
    *_entity_rules("container"),
    policy.RuleDefault("order_project_match", "project_id:%(target.order.project_id)s"),
    policy.RuleDefault("order_project_member", "role:member and rule:order_project_match"),
]

S, C = "secret", "container"

ENDPOINTS = [
    # secrets
    _rule("secrets:post", "role:member", "rule:admin_or_creator", "Create a secret."),
    _rule("secrets:get", "role:member", "rule:all_but_audit", "List the project's secrets."),
    _rule("secret:get", _with_acl(S), _legacy_read(S), "Read a secret's metadata."),
    _rule(
        "secret:decrypt",
        _with_acl(S),
        "rule:secret_decrypt_non_private_read or rule:secret_project_creator or rule:secret_project_admin or "
        "rule:secret_acl_read",
        "Read a secret's payload.",
    ),
    _rule("secret:put", _member_or_admin(S), "rule:admin_or_creator and rule:secret_project_match", "Add a payload."),
    _rule(
        "secret:delete",
        _member_or_admin(S),
        "rule:secret_project_admin or rule:secret_project_creator or "
        "(rule:secret_project_creator_role and not rule:secret_private_read)",
        "Delete a secret.",
    ),
    _rule("secret_meta:get", _with_acl(S), _legacy_read(S)),
    *(_rule(f"secret_meta:{op}", _member_or_admin(S), _legacy_write(S)) for op in ("post", "put", "delete")),
    *(_rule(f"secret_consumers:{op}", _with_acl(S), _legacy_read(S)) for op in ("get", "post", "delete")),
    _rule("secret_acls:get", _member_or_admin(S), "rule:all_but_audit and rule:secret_project_match"),
    *(_rule(f"secret_acls:{op}", _member_or_admin(S), _legacy_write(S)) for op in ("put_patch", "delete")),
    # containers
    _rule("containers:post", "role:member", "rule:admin_or_creator"),
    _rule("containers:get", "role:member", "rule:all_but_audit"),
    _rule("container:get", _with_acl(C), _legacy_read(C)),
    _rule("container:delete", _member_or_admin(C), "rule:container_project_admin or rule:container_project_creator"),
    *(_rule(f"container_secret:{op}", _member_or_admin(C), _legacy_write(C)) for op in ("post", "delete")),
    *(_rule(f"container_consumers:{op}", _with_acl(C), _legacy_read(C)) for op in ("get", "post", "delete")),
    _rule("consumer:get", _with_acl(C), _legacy_read(C)),
    _rule("container_acls:get", _member_or_admin(C), "rule:all_but_audit and rule:container_project_match"),
    *(_rule(f"container_acls:{op}", _member_or_admin(C), _legacy_write(C)) for op in ("put_patch", "delete")),
    # orders
    _rule("orders:get", "role:member", "rule:all_but_audit"),
    _rule("orders:post", "role:member", "rule:admin_or_creator"),
    _rule("orders:put", "role:member", "rule:admin_or_creator"),
    _rule("order:get", "rule:order_project_member", "rule:all_users and rule:order_project_match"),
    _rule("order:delete", "rule:order_project_member", "rule:admin and rule:order_project_match"),
    # quotas
    _rule("quotas:get", "role:reader", "rule:all_users"),
    *(
        _rule(f"project_quotas:{op}", "role:admin", "rule:service_admin", scope_types=PROJECT_OR_SYSTEM)
        for op in ("get", "put", "delete")
    ),
    # secret stores
    *(
        _rule(name, "role:reader", "rule:all_users", scope_types=PROJECT_OR_SYSTEM)
        for name in (
            "secretstores:get",
            "secretstores:get_global_default",
            "secretstores:get_preferred",
            "secretstore:get",
        )
    ),
    *(_rule(f"secretstore_preferred:{op}", "role:admin", "rule:admin") for op in ("post", "delete")),
    # donjon extension: the project's audit records and the chain's verification (/v1/audit/*)
    _rule("audit:get", "role:admin", "rule:admin or rule:audit", "Read the project's audit records."),
    # transport keys (vestigial in Barbican; refused by donjon, the rules exist for policy files that name them)
    _rule("transport_keys:get", "role:reader", "rule:all_users"),
    _rule("transport_key:get", "role:reader", "rule:all_users"),
    _rule("transport_keys:post", "role:admin", "rule:service_admin"),
    _rule("transport_key:delete", "role:admin", "rule:service_admin"),
]

ALL = [*BASE, *ENDPOINTS]


_ROLE_CHECK = re.compile(r"role:([\w.:-]+)")


def known_roles(policy_file: Path | None = None) -> set[str]:
    """Every role a rule checks: the defaults (new and legacy) and the operator's policy file, if any. A token
    given any other role could do nothing, so ``donjon token create`` refuses one."""
    checks = [rule.check_str for rule in ALL]
    checks += [rule.deprecated_rule.check_str for rule in ALL if rule.deprecated_rule is not None]
    if policy_file is not None:
        try:
            checks.append(policy_file.read_text(encoding="utf-8"))
        except OSError:
            pass  # the server reports an unreadable policy file; its roles are then unknown here
    return {match.lower() for check in checks for match in _ROLE_CHECK.findall(check)}
