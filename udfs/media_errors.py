"""The one error type for media values (images, audio) that cannot be decoded.

Why a dedicated class: the engine must tell "this row's file is bad" (report it, maybe skip the row)
apart from programming errors. Subclassing ValueError keeps it catchable by code that already
handles bad input values.
"""

from __future__ import annotations


class MediaError(ValueError):
    """A media value is missing, empty, corrupt, unsupported or too large to decode.

    The message names the problem briefly, e.g.
    "truncated or corrupt image: cannot identify image file".
    """


class Failed:
    """A kernel's answer for one item that has no result (e.g. audio with no speech).

    The engine turns it into NULL plus a warning that carries the reason, and never caches it.
    """

    __slots__ = ("reason",)

    def __init__(self, reason: str) -> None:
        self.reason = reason

    def __repr__(self) -> str:
        return f"Failed({self.reason!r})"
