"""Policy checks for the services: ``Policy.allowed(rule, caller, target)``.

Roles are expanded the way Keystone's default implied roles do (admin implies member implies reader), so a
caller whose token or dev headers say ``admin`` passes ``role:member`` rules too.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path

from oslo_config import cfg
from oslo_policy import policy

from donjon.auth import Caller
from donjon.errors import ConfigurationError, Forbidden
from donjon.policy.rules import defaults

IMPLIED_ROLES = {"admin": ("member", "reader"), "member": ("reader",)}


def expand_roles(roles: tuple[str, ...]) -> list[str]:
    out = list(dict.fromkeys(roles))
    for role in roles:
        for implied in IMPLIED_ROLES.get(role, ()):
            if implied not in out:
                out.append(implied)
    return out


@dataclass(frozen=True)
class Target:
    """What a rule is checked against: the resource's owner, creator and ACL, from stored rows only."""

    kind: str  # "secret", "container" or "order"
    project_id: str
    creator_id: str | None = None
    project_access: bool = True
    acl_read: bool = False  # the caller is listed in the resource's read ACL

    def as_dict(self) -> dict[str, object]:
        prefix = f"target.{self.kind}"
        return {
            f"{prefix}.project_id": self.project_id,
            f"{prefix}.creator_id": self.creator_id or "",
            f"{prefix}.read_project_access": self.project_access,
            f"{prefix}.read": "read" if self.acl_read else "",
        }


class Policy:
    def __init__(self, *, policy_file: Path | None = None, enforce_new_defaults: bool = True) -> None:
        if policy_file is not None and not policy_file.is_file():
            raise ConfigurationError(f"policy file {policy_file} does not exist")
        self._policy_file = policy_file
        self._policy_mtime = policy_file.stat().st_mtime_ns if policy_file is not None else -1
        conf = cfg.ConfigOpts()
        conf([], project="donjon", default_config_files=[], default_config_dirs=[])
        self._enforcer = policy.Enforcer(
            conf,
            policy_file=str(policy_file) if policy_file else "donjon-no-policy-file.yaml",
            use_conf=True,
        )
        conf.set_override("enforce_new_defaults", enforce_new_defaults, group="oslo_policy")
        self._enforce_new_defaults = enforce_new_defaults
        # One set of defaults, the operator's choice (rules.py): Barbican's legacy rules alone, or its new ones.
        self._enforcer.register_defaults(defaults(enforce_new_defaults))
        self._enforcer.load_rules()
        if policy_file is None:
            # Without a file, oslo.policy would search the config dirs for one on every check (~0.4 ms).
            self._enforcer.use_conf = False

    def allowed(self, rule: str, caller: Caller, target: Target | None = None) -> bool:
        if self._policy_file is not None:
            try:
                mtime = self._policy_file.stat().st_mtime_ns
            except OSError:
                mtime = -1
            if mtime != self._policy_mtime:
                # The operator edited policy.yaml: oslo.policy reloads it, and old decisions are void.
                self._policy_mtime = mtime
                self._decide.cache_clear()
        return self._decide(rule, caller, target)

    @functools.lru_cache(maxsize=8192)  # noqa: B019 - one Policy per process, lives as long as it
    def _decide(self, rule: str, caller: Caller, target: Target | None) -> bool:
        # oslo.policy introspects every sub-check's signature on each call (~0.3 ms for Barbican's rules);
        # a decision depends only on these exact inputs, so it is computed once per distinct input.
        creds: dict[str, object] = {
            "user_id": caller.user_id,
            "project_id": caller.project_id or None,
            "roles": expand_roles(caller.roles),
        }
        if caller.system_scope:
            # oslo.policy: a system-scoped caller only passes rules whose scope_types include "system",
            # and ``system_scope:all`` checks see it.
            creds["system_scope"] = caller.system_scope
        # Barbican puts its mode in every target, for its ``True:%(enforce_new_defaults)s and …`` rules: an
        # operator's policy.yaml copied from Barbican decides the same here.
        facts: dict[str, object] = {"enforce_new_defaults": self._enforce_new_defaults}
        if target is not None:
            facts.update(target.as_dict())
        result: bool = self._enforcer.enforce(rule, facts, creds, do_raise=False)
        return result

    def enforce(self, rule: str, caller: Caller, target: Target | None = None, *, operation: str) -> None:
        if not self.allowed(rule, caller, target):
            raise Forbidden(f"{operation} attempt not allowed - please review your user/project privileges")

    def rule_names(self) -> list[str]:
        return sorted(self._enforcer.registered_rules)
