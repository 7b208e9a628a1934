"""Errors that describe bad user input (a name, a file, a value) and say how to fix it.

The CLI prints these without a traceback; everything else is a bug and keeps its traceback.
"""

from __future__ import annotations


class VitkitError(Exception):
    """Base of the errors the CLI reports as plain messages."""


class UnknownModelError(VitkitError, KeyError):
    """A model name that is neither a vitkit preset nor (where allowed) a timm model."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""


def find_user_error(error: BaseException) -> VitkitError | None:
    """The first ``VitkitError`` in ``error``'s cause/context chain (frameworks wrap what our code raises)."""
    seen = set()
    while error is not None and id(error) not in seen:
        if isinstance(error, VitkitError):
            return error
        seen.add(id(error))
        error = error.__cause__ or error.__context__
    return None
