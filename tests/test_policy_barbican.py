"""donjon's default policy against Barbican 23's own rule strings, rule by rule, cell by cell, in both modes.

``BARBICAN_23`` (barbican_23_policy.json) is ``barbican.common.policies.list_rules()`` of barbican 23.0.0
(its sdist on PyPI), copied verbatim: [name, check_str, deprecated rule's check_str]. Barbican's enforcer is
rebuilt here as Barbican builds it (barbican/common/policy.py, barbican/api/controllers/__init__.py): the
deprecated rules ORed in by oslo.policy when ``enforce_new_defaults`` is false, and ``enforce_new_defaults``
in every target. donjon's ``Policy`` must decide exactly as that enforcer for every rule Barbican has, every
caller (each role alone, in the target's project or another, owner of the target or not) and every target
(private or not, caller in its read ACL or not), except the deliberate differences in ``DELIBERATE``
(docs/api-compatibility.md, difference 2). When ``BARBICAN_VENV`` points at an installed Barbican, the copy
is checked against it.
"""

from __future__ import annotations

import itertools
import json
import subprocess
from pathlib import Path

import pytest
from oslo_config import cfg
from oslo_policy import policy

from donjon.auth import Caller
from donjon.policy import Policy, Target
from donjon.policy.enforcer import expand_roles
from tests.components.barbican import barbican_venv

_COPY = json.loads((Path(__file__).parent / "barbican_23_policy.json").read_text())
BARBICAN_23: list[tuple[str, str, str | None]] = [(name, check, legacy) for name, check, legacy in _COPY]

# donjon's deliberate differences, as edits of Barbican's strings: (rule, new defaults?) -> (Barbican's text,
# donjon's). An admin (or, in legacy mode, any known role) of one project is not granted other projects'
# secrets and containers by a bare role check.
_BARE_LEGACY = "rule:admin or rule:observer or rule:creator or rule:audit or "
DELIBERATE: dict[tuple[str, bool], tuple[str, str]] = {
    ("secret:get", True): ("(role:admin or ", "("),
    ("secret:delete", True): ("(role:admin or ", "("),
    ("consumer:get", True): ("(role:admin or ", "(rule:container_project_admin or "),
    ("consumer:get", False): (_BARE_LEGACY, ""),
}

ROLES = ["admin", "member", "reader", "creator", "observer", "audit", "key-manager:service-admin", "guest"]
OWNER = "owner-user"


def barbican_enforcer(enforce_new_defaults: bool, deliberate: bool) -> policy.Enforcer:
    """Barbican's enforcer over ``BARBICAN_23``; with ``deliberate``, donjon's documented edits applied."""
    conf = cfg.ConfigOpts()
    conf([], project="barbican-policy-test", default_config_files=[], default_config_dirs=[])
    enforcer = policy.Enforcer(conf, policy_file="barbican-no-policy-file.yaml")
    conf.set_override("enforce_new_defaults", enforce_new_defaults, group="oslo_policy")
    enforcer.suppress_deprecation_warnings = True
    enforcer.suppress_default_change_warnings = True
    for name, check, legacy in BARBICAN_23:
        edit = DELIBERATE.get((name, enforce_new_defaults)) if deliberate else None
        if edit is not None:
            text = legacy if (legacy is not None and not enforce_new_defaults) else check
            assert edit[0] in text, (name, text)  # Barbican's string is still the one documented
            if enforce_new_defaults:
                check = check.replace(*edit)
            else:
                legacy = (legacy or "").replace(*edit)
        deprecated = (
            policy.DeprecatedRule(name, legacy, deprecated_reason="legacy", deprecated_since="W")
            if legacy is not None
            else None
        )
        enforcer.register_default(policy.RuleDefault(name, check, deprecated_rule=deprecated))
    enforcer.load_rules()
    return enforcer


def _targets(rule: str) -> list[Target | None]:
    """The targets a rule is checked on: its resource, private or not, the caller in its ACL or not."""
    kind = (
        "order"
        if rule.startswith("order:")
        else "container"
        if rule.startswith(("container", "consumer:"))
        else "secret"
        if rule.startswith("secret") and not rule.startswith(("secrets:", "secretstore"))
        else None
    )
    if kind is None:
        return [None]
    if kind == "order":
        return [Target("order", "A", OWNER)]
    return [Target(kind, "A", OWNER, access, acl) for access, acl in itertools.product((True, False), repeat=2)]


def _callers() -> list[Caller]:
    return [
        Caller(project, user, (role,))
        for project, user, role in itertools.product(("A", "B"), (OWNER, "someone-else"), ROLES)
    ]


def _barbican_allows(enforcer: policy.Enforcer, rule: str, caller: Caller, target: Target | None, new: bool) -> bool:
    facts: dict[str, object] = {"enforce_new_defaults": new, **(target.as_dict() if target else {})}
    # Keystone puts the implied roles in the token (admin implies member implies reader): Barbican sees them.
    creds = {"user_id": caller.user_id, "project_id": caller.project_id, "roles": expand_roles(caller.roles)}
    allowed: bool = enforcer.enforce(rule, facts, creds, do_raise=False)
    return allowed


ENDPOINT_RULES = [name for name, _, legacy in BARBICAN_23 if legacy is not None]


@pytest.mark.parametrize("new", [True, False], ids=["new-defaults", "legacy"])
def test_every_rule_decides_as_barbican_23(new: bool) -> None:
    donjon = Policy(enforce_new_defaults=new)
    barbican = barbican_enforcer(new, deliberate=True)
    wrong = []
    cells = 0
    for rule in ENDPOINT_RULES:
        for target, caller in itertools.product(_targets(rule), _callers()):
            cells += 1
            want = _barbican_allows(barbican, rule, caller, target, new)
            if donjon.allowed(rule, caller, target) != want:
                wrong.append(f"{rule} {caller.project_id}/{caller.user_id}/{caller.roles[0]} on {target}: want {want}")
    assert not wrong, "\n".join(wrong[:40])
    assert cells == 129 * 32  # 48 rules on 129 targets (one for lists, quotas, stores, orders; else 4); 32 callers


def test_legacy_mode_is_only_the_legacy_rules() -> None:
    """The issue's case: project-quotas need key-manager:service-admin in legacy mode; a project admin or a
    member (the new roles) pass nothing the legacy rules do not grant."""
    legacy, new = Policy(enforce_new_defaults=False), Policy(enforce_new_defaults=True)
    admin, member = Caller("A", "u", ("admin",)), Caller("A", "u", ("member",))
    service_admin = Caller("A", "u", ("key-manager:service-admin",))
    for op in ("get", "put", "delete"):
        assert not legacy.allowed(f"project_quotas:{op}", admin)
        assert legacy.allowed(f"project_quotas:{op}", service_admin)
        assert new.allowed(f"project_quotas:{op}", admin)
        assert not new.allowed(f"project_quotas:{op}", service_admin)
    assert not legacy.allowed("secrets:post", member)
    assert legacy.allowed("secrets:post", Caller("A", "u", ("creator",)))
    assert not new.allowed("secrets:post", Caller("A", "u", ("creator",)))


def test_each_deliberate_difference_is_one() -> None:
    """Unedited, Barbican's string for each rule in ``DELIBERATE`` grants something donjon refuses (every
    other rule is Barbican's unedited string, checked above)."""
    for rule, new in DELIBERATE:
        donjon, barbican = Policy(enforce_new_defaults=new), barbican_enforcer(new, deliberate=False)
        assert any(
            _barbican_allows(barbican, rule, caller, target, new) and not donjon.allowed(rule, caller, target)
            for target, caller in itertools.product(_targets(rule), _callers())
        ), rule


def test_a_barbican_policy_file_with_the_mode_prefix_works(tmp_path: Path) -> None:
    """Barbican's own rules name ``%(enforce_new_defaults)s``; copied into a policy.yaml they decide the same."""
    (tmp_path / "policy.yaml").write_text('"secrets:post": "True:%(enforce_new_defaults)s and role:member"\n')
    member = Caller("A", "u", ("member",))
    assert Policy(policy_file=tmp_path / "policy.yaml", enforce_new_defaults=True).allowed("secrets:post", member)
    assert not Policy(policy_file=tmp_path / "policy.yaml", enforce_new_defaults=False).allowed("secrets:post", member)


def test_the_copy_is_barbican_23s_own() -> None:
    # The real Barbican 23 of scripts/barbican-env (BARBICAN_VENV, else built beside the checkout): the test
    # command builds it, so this comparison runs in CI instead of skipping.
    python = barbican_venv() / "bin" / "python"
    dump = (
        "import json; from barbican.common import policies; print(json.dumps([(r.name, r.check_str, "
        "r.deprecated_rule.check_str if r.deprecated_rule else None) for r in policies.list_rules()]))"
    )
    out = subprocess.run([str(python), "-c", dump], check=True, capture_output=True, text=True, timeout=120).stdout
    assert [tuple(r) for r in json.loads(out)] == BARBICAN_23
