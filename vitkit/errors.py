"""Errors that describe bad user input (a name, a file, a value) and say how to fix it.

Every such error is a ``VitkitError(what, fix)``: ``what`` names the value, key or file at fault, ``fix`` says what
to do. The CLI prints it as one line, ``vitkit: error: <what> — <fix>``, and exits with status 2; everything else is
a bug and keeps its traceback.
"""

from __future__ import annotations

SEPARATOR = " — "


class VitkitError(Exception):
    """Base of the errors the CLI reports as one line.

    A DataLoader worker process that raises one is reported by the main process with a new exception of the same
    class whose message is the worker's whole traceback; such a message is cut back to the original one, plus where
    it was raised, so that a bad file reads as a bad file wherever it was loaded.
    """

    def __init__(self, what: str, fix: str | None = None) -> None:
        what = _strip_worker_traceback(what)
        self.what, self.fix = what, fix
        super().__init__(what if fix is None else f"{what}{SEPARATOR}{fix}")

    def one_line(self) -> str:
        """The message on one line (a multi-line detail joined with ``; ``)."""
        return "; ".join(part.strip() for part in str(self).splitlines() if part.strip())


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
    if SEPARATOR in text:  # keep the fix last
        what, fix = text.split(SEPARATOR, 1)
        return f"{what} (raised {where}){SEPARATOR}{fix}"
    return f"{text} (raised {where})"


class UnknownModelError(VitkitError, KeyError):
    """A model name that is neither a vitkit preset nor (where allowed) a timm model."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""


class ConfigError(VitkitError, ValueError):
    """A configuration value that cannot work (a block size that does not divide the sequence, ...)."""


class CheckpointError(VitkitError, ValueError):
    """A checkpoint file that cannot be read or does not fit the model."""


class MissingFileError(VitkitError, FileNotFoundError):
    """A file the user named that is not there."""


def find_user_error(error: BaseException) -> VitkitError | None:
    """The first ``VitkitError`` in ``error``'s cause/context chain (frameworks wrap what our code raises)."""
    seen = set()
    while error is not None and id(error) not in seen:
        if isinstance(error, VitkitError):
            return error
        seen.add(id(error))
        error = error.__cause__ or error.__context__
    return None
