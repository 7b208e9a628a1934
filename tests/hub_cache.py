"""A Hugging Face Hub cache written by the tests, in huggingface_hub's own layout, read offline.

``hub_cache.put(repo, {file: writer})`` writes ``models--ORG--REPO/snapshots/<sha>/FILE`` and ``refs/main`` under a
temporary ``HF_HUB_CACHE``; the test runs with ``HF_HUB_OFFLINE=1``, so nothing ever touches the network.
huggingface_hub reads both variables once at import, so its constants are set too.
"""

import hashlib
from collections.abc import Callable
from pathlib import Path


class HubCache:
    def __init__(self, root: Path) -> None:
        self.root = root

    def put(self, repo: str, files: dict[str, Callable[[Path], object]]) -> Path:
        """Write ``files`` (name → function writing that path) as the ``main`` snapshot of ``repo``."""
        sha = hashlib.sha1(repo.encode()).hexdigest()  # any 40-hex commit id
        folder = self.root / f"models--{repo.replace('/', '--')}"
        snapshot = folder / "snapshots" / sha
        snapshot.mkdir(parents=True, exist_ok=True)
        for name, write in files.items():
            write(snapshot / name)
        (folder / "refs").mkdir(exist_ok=True)
        (folder / "refs" / "main").write_text(sha)
        return snapshot


def offline_hub_cache(tmp_path, monkeypatch) -> HubCache:
    """An empty cache under ``tmp_path``, made huggingface_hub's, offline (the ``hub_cache`` fixtures)."""
    from huggingface_hub import constants

    root = tmp_path / "hf_cache"
    root.mkdir()
    monkeypatch.setenv("HF_HUB_CACHE", str(root))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(root))
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    return HubCache(root)
