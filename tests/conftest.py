"""Fixtures shared across test folders."""

from __future__ import annotations

import logging
import sys

import lightning.pytorch  # noqa: F401  (its loggers are set up on import)
import pytest

# Lightning gives its loggers a stream handler bound to whatever sys.stderr is when it is first imported. Imported
# inside a test that captures output, that stream is closed when the test ends, and every later Lightning log line
# becomes a "--- Logging error ---" traceback. Pointing the handlers at the process's real stderr (file descriptor 2,
# which pytest's capture still collects) keeps them writable for the whole session.
for _name in ("lightning.fabric", "lightning.pytorch"):
    for _handler in logging.getLogger(_name).handlers:
        if isinstance(_handler, logging.StreamHandler):
            _handler.setStream(sys.__stderr__)


@pytest.fixture(scope="session")
def digits_detection_root(tmp_path_factory):
    """The standard digits_detection set (2,000 + 200 canvases), generated once per test session."""
    from vitkit.data.digits_detection import ensure_generated

    return ensure_generated(tmp_path_factory.mktemp("digits_detection") / "root")
