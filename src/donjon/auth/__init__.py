"""Who is calling. Each auth mode turns a request's headers into a ``Caller``."""

from donjon.auth.context import Caller

__all__ = ["Caller"]
