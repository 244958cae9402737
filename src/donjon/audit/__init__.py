"""Audit: a CADF event for every API request, to a tamper-evident local log and oslo.messaging.

``events`` builds the events, ``chain`` seals them into a hash chain, ``sinks`` writes them, ``auditor``
dispatches, ``middleware`` hooks every request, ``verify`` checks a log.
"""

from donjon.audit.auditor import Auditor, audit_paths, build_auditor, prepare_audit

__all__ = ["Auditor", "audit_paths", "build_auditor", "prepare_audit"]
