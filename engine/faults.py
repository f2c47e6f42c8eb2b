"""Fault injection for crash tests: QUARRYDB_CRASH_AT=<point> kills the process there (SIGKILL).

The points sit between the steps of a crash-safe write, so tests can show that a kill between
any two of them leaves a database that opens and answers correctly. Unset, it does nothing.
"""

from __future__ import annotations

import os
import signal


def crash_point(name: str) -> None:
    if os.environ.get("QUARRYDB_CRASH_AT") == name:
        os.kill(os.getpid(), signal.SIGKILL)
