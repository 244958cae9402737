"""May they: Barbican's policy rule names with secure-RBAC defaults, enforced by oslo.policy."""

from donjon.policy.enforcer import Policy, Target

__all__ = ["Policy", "Target"]
