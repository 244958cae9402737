"""Scheduling for the threads that only wait for the disk or the database (audit fdatasync, group commit).

Such a thread is woken by the event loop of its process, which holds the GIL at that moment and goes on
holding it. Under the default policy the kernel may preempt the loop right away to run the woken thread,
which can do nothing but find the GIL taken and sleep again: two context switches for nothing, on the
loop's time, for every fdatasync or commit. ``SCHED_BATCH`` (Linux) gives such a thread the same share of
the CPU and takes only that wake-up preemption away: it runs once the loop lets go of its CPU, or on the
other core. Measured with 2 workers on 2 cores (alternating runs, bench/README.md): payload reads with
Connection: close +15-16 % ok/s and -16 % CPU per request, stores +5 %, keep-alive reads -2 % at -8 % CPU.
"""

from __future__ import annotations

import os


def without_wakeup_preemption() -> None:
    """Put the calling thread under ``SCHED_BATCH`` where the platform has it; elsewhere, do nothing."""
    policy = getattr(os, "SCHED_BATCH", None)
    if policy is None or not hasattr(os, "sched_setscheduler"):
        return
    try:
        os.sched_setscheduler(0, policy, os.sched_param(0))  # 0: the calling thread (a Linux thread's own id)
    except OSError:  # a sandbox that filters the call: the thread runs under the default policy
        pass
