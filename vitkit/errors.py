"""Errors that describe bad user input (a name, a file, a value) and say how to fix it.

The CLI prints these without a traceback; everything else is a bug and keeps its traceback.
"""

from __future__ import annotations


class VitkitError(Exception):
    """Base of the errors the CLI reports as plain messages.

    A DataLoader worker process that raises one is reported by the main process with a new exception of the same
    class whose message is the worker's whole traceback; such a message is cut back to the original one, plus where
    it was raised, so that a bad file reads as a bad file wherever it was loaded.
    """

    def __init__(self, *args: object) -> None:
        if len(args) == 1 and isinstance(args[0], str):
            args = (_strip_worker_traceback(args[0]),)
        super().__init__(*args)


def _strip_worker_traceback(message: str) -> str:
    """``"Caught DataError in DataLoader worker process 0.\nOriginal Traceback ...\nvitkit...DataError: msg"`` →
    ``"msg (raised in DataLoader worker process 0)"``; other messages unchanged."""
    head, sep, trace = message.partition("\nOriginal Traceback (most recent call last):\n")
    if not (sep and head.startswith("Caught ")):
        return message
    last = trace.rpartition("Traceback (most recent call last):\n")[2]  # the final exception of a chain
    lines = last.splitlines()
    start = next((i for i, line in enumerate(lines) if line and not line[0].isspace()), None)
    if start is None:
        return message
    error = "\n".join(lines[start:])
    name = head.split()[1]  # the class name, as the worker saw it
    marker = f"{name}: "
    text = error.split(marker, 1)[1] if marker in error else error
    where = head[len(f"Caught {name} "):].rstrip(".")
    return f"{text} (raised {where})"


class UnknownModelError(VitkitError, KeyError):
    """A model name that is neither a vitkit preset nor (where allowed) a timm model."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""


class ConfigError(VitkitError, ValueError):
    """A configuration value that cannot work (a block size that does not divide the sequence, ...)."""


def find_user_error(error: BaseException) -> VitkitError | None:
    """The first ``VitkitError`` in ``error``'s cause/context chain (frameworks wrap what our code raises)."""
    seen = set()
    while error is not None and id(error) not in seen:
        if isinstance(error, VitkitError):
            return error
        seen.add(id(error))
        error = error.__cause__ or error.__context__
    return None
