"""Fixtures of the training tests."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def small_detection_root(tmp_path_factory):
    """A small digits-on-canvas COCO set (48 train / 16 val canvases) for fast detection runs."""
    from vitkit.data.digits_detection import write_digits_detection

    root = tmp_path_factory.mktemp("small_detection")
    write_digits_detection(root, counts={"train": 48, "val": 16})
    return root
