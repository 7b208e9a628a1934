"""Streaming shards from a URL root (``--data.root s3://bucket/prefix``): handed to litdata as a remote input dir,
never looked up locally, chunks downloaded into ``--data.cache_dir``, the same samples as the local folder; and
litdata's failures (no credentials, no index) as one line. No network: ``local:PATH`` is litdata's own remote-style
root over a local folder (its download-to-cache path), and for ``s3://`` only the transport is replaced — litdata's
S3 downloader by one that serves a local folder — so everything above it (litdata's resolver, cache, index download,
chunk download; vitkit's reading) runs as it would against S3."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from forked import ROOT
from test_shards import _photo_folder

from vitkit.cli import main as vitkit
from vitkit.data import DataError, VisionDataModule


@pytest.fixture(scope="module")
def shards(tmp_path_factory) -> Path:
    folder = _photo_folder(tmp_path_factory.mktemp("photos"), {"train": 4, "val": 2})
    out = tmp_path_factory.mktemp("shards") / "out"
    assert vitkit(["prepare", "--from", str(folder), "--to", str(out), "--workers", "1"]) == 0
    return out


def _module(root: str, **kwargs) -> VisionDataModule:
    return VisionDataModule("streaming", root=root, image_size=16, num_workers=0, augment="imagenet", **kwargs)


def _same_samples(a: VisionDataModule, b: VisionDataModule) -> None:
    assert a.class_names == b.class_names
    for split in ("train", "val"):
        ours, theirs = a.dataset(split), b.dataset(split)
        assert len(ours) == len(theirs) > 0
        for i in range(len(ours)):
            x, y = ours[i], theirs[i]
            assert torch.equal(x["image"], y["image"]) and x["label"] == y["label"], (split, i)


def test_a_local_url_root_reads_through_litdatas_download_cache(shards, tmp_path):
    cache = tmp_path / "cache"
    remote = _module(f"local:{shards}", cache_dir=str(cache))
    assert remote.options.root == f"local:{shards}"
    _same_samples(_module(str(shards)), remote)
    reader = remote.dataset("train").samples.dataset._reader  # the StreamingDataset the records came from
    assert reader.input_dir.url == f"local:{shards}/train"
    assert Path(reader.input_dir.path).is_relative_to(cache)
    assert sorted(p.name for p in cache.rglob("*.bin")) == ["chunk-0-0.bin", "chunk-0-0.bin"]  # train and val


class _FakeS3:
    """litdata's S3 downloader with its transport replaced: ``s3://bucket/...`` served from a local folder; every
    URL asked for is recorded."""

    folder: Path
    asked: list[str] = []

    @classmethod
    def make(cls, folder: Path):
        from litdata.streaming.downloader import LocalDownloader

        def local(url: str) -> str:
            cls.asked.append(url)
            assert url.startswith("s3://bucket/prefix/"), url
            return str(folder / url.removeprefix("s3://bucket/prefix/"))

        class Downloader(LocalDownloader):
            def download_file(self, remote, local_path):
                super().download_file(local(remote), local_path)

            async def adownload_file(self, remote, local_path):
                await super().adownload_file(local(remote), local_path)

            async def adownload_bytes(self, remote, offset, length, local_path):
                return await super().adownload_bytes(local(remote), offset, length, local_path)

            async def adownload_fileobj(self, remote):
                return await super().adownload_fileobj(local(remote))

        return Downloader


@pytest.fixture
def fake_s3(shards, monkeypatch):
    from litdata.streaming import downloader

    _FakeS3.asked = []
    monkeypatch.setitem(downloader._DOWNLOADERS, "s3://", _FakeS3.make(shards))
    return _FakeS3


def test_an_s3_root_reaches_litdata_as_a_remote_input_dir(shards, fake_s3, tmp_path):
    cache = tmp_path / "cache"
    remote = _module("s3://bucket/prefix/", cache_dir=str(cache))  # a trailing slash is dropped
    _same_samples(_module(str(shards)), remote)
    reader = remote.dataset("val").samples.dataset._reader
    assert reader.input_dir.url == "s3://bucket/prefix/val" and Path(reader.input_dir.path).is_relative_to(cache)
    asked = {url.removeprefix("s3://bucket/prefix/") for url in fake_s3.asked}
    assert {"vitkit_shards.json", "train/samples.npz", "train/index.json", "train/chunk-0-0.bin",
            "val/chunk-0-0.bin"} <= asked, asked


def test_remote_failures_are_one_line(shards, fake_s3, tmp_path, monkeypatch, capsys):
    with pytest.raises(DataError, match=r"cannot read s3://bucket/prefix/nothere/vitkit_shards.json: "
                                        r"FileNotFoundError.*credentials"):
        _module("s3://bucket/prefix/nothere")
    copy = tmp_path / "copy"  # a folder copied without its split files: named before training starts
    copy.mkdir()
    (copy / "vitkit_shards.json").write_bytes((shards / "vitkit_shards.json").read_bytes())
    dm = _module(f"local:{copy}")
    with pytest.raises(DataError, match="train/samples.npz"):
        dm.setup()

    from litdata.streaming import downloader

    class NoCredentials(downloader.LocalDownloader):
        def download_file(self, remote, local_path):
            raise RuntimeError("Unable to locate credentials\n(botocore says)")

    monkeypatch.setitem(downloader._DOWNLOADERS, "s3://", NoCredentials)
    assert vitkit(["fit", "-c", str(ROOT / "configs/vit/digits.yaml"), "--data.dataset", "streaming",
                   "--data.root", "s3://bucket/prefix"]) == 2
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and "Unable to locate credentials (botocore says)" in lines[0], err
    assert "AWS_ACCESS_KEY_ID" in lines[0] and "Traceback" not in err


def test_a_url_root_is_refused_by_datasets_that_read_local_files():
    with pytest.raises(DataError, match="reads a local folder, not the URL s3://b/p.*--data.dataset streaming"):
        VisionDataModule("imagefolder", root="s3://b/p")
