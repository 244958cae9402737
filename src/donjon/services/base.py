"""What every service is built on: the database it works in, the policy that guards it and the clock it reads.

The services took these three the same way one by one; one constructor now serves them all (issue 18).
"""

from __future__ import annotations

from donjon.policy import Policy
from donjon.storage.database import Database
from donjon.timeutil import SYSTEM_CLOCK, Clock


class Service:
    def __init__(self, db: Database, policy: Policy, *, clock: Clock = SYSTEM_CLOCK) -> None:
        self._db = db
        self._policy = policy
        self._clock = clock
