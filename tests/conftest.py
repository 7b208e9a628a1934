"""Fixtures shared across test folders."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def digits_detection_root(tmp_path_factory):
    """The standard digits_detection set (2,000 + 200 canvases), generated once per test session."""
    from vitkit.data.digits_detection import ensure_generated

    return ensure_generated(tmp_path_factory.mktemp("digits_detection") / "root")
