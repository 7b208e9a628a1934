"""Fixtures of the weights tests."""

import pytest


@pytest.fixture
def hub_cache(tmp_path, monkeypatch):
    """An empty offline Hugging Face cache (tests/hub_cache.py)."""
    from tests.hub_cache import offline_hub_cache

    return offline_hub_cache(tmp_path, monkeypatch)
