"""``vitkit check-data --dataset streaming``: through the CLI, a sound shard folder passes (exit 0, its counts per
split and class), a record whose image is damaged inside its chunk is named by split, index and source file, a
truncated or missing chunk and a missing index file are one error each saying how to prepare again (exit 1), as for
the other datasets; ``--sample N`` reads N records per split."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from test_shards import _photo_folder

from vitkit.cli import main as vitkit


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    return _photo_folder(tmp_path_factory.mktemp("photos"), {"train": 4, "val": 2})


@pytest.fixture
def shards(folder, tmp_path) -> Path:
    out = tmp_path / "shards"
    assert vitkit(["prepare", "--from", str(folder), "--to", str(out), "--workers", "1"]) == 0
    return out


def _check(root: Path, capsys, *extra: str) -> tuple[int, str]:
    capsys.readouterr()
    code = vitkit(["check-data", "--dataset", "streaming", "--root", str(root), *extra])
    return code, capsys.readouterr().out


def test_sound_shards_pass_with_their_counts(shards, capsys):
    code, out = _check(shards, capsys)
    assert code == 0, out
    assert "classification shards, 3 classes; train 12 records (cat 4, dog 4, fox 4), 12 read and decoded" in out
    assert "val 6 records (cat 2, dog 2, fox 2), 6 read and decoded" in out and "OK: 0 error(s)" in out
    code, out = _check(shards, capsys, "--sample", "3")
    assert code == 0 and "12 records (cat 4, dog 4, fox 4), 3 read and decoded" in out, out


def test_a_damaged_record_is_named(folder, shards, capsys):
    victim = folder / "train/dog/01.jpg"  # record 5 of train: cat 0-3, dog 0-3, ...
    chunk = shards / "train/chunk-0-0.bin"
    data = chunk.read_bytes()
    at = data.index(victim.read_bytes())
    chunk.write_bytes(data[:at] + b"\0\0" + data[at + 2:])  # its JPEG start marker gone, the chunk's size kept
    code, out = _check(shards, capsys)
    assert code == 1, out
    assert "error: train[5] (train/dog/01.jpg): cannot read image: not an image" in out and "skip_bad_files" in out
    assert "FAILED: 1 error(s)" in out


@pytest.mark.parametrize("damage", ["truncated_chunk", "missing_chunk", "missing_index", "missing_samples",
                                    "wrong_count"])
def test_a_broken_folder_is_one_error_saying_how_to_prepare_again(shards, capsys, damage):
    chunk = shards / "val/chunk-0-0.bin"
    if damage == "truncated_chunk":
        chunk.write_bytes(chunk.read_bytes()[:-100])
    elif damage == "missing_chunk":
        chunk.unlink()
    elif damage in ("missing_index", "missing_samples"):
        (shards / ("val/index.json" if damage == "missing_index" else "val/samples.npz")).unlink()
    else:
        manifest = json.loads((shards / "vitkit_shards.json").read_text())
        manifest["splits"]["val"] = 7
        (shards / "vitkit_shards.json").write_text(json.dumps(manifest))
    code, out = _check(shards, capsys)
    assert code == 1 and "FAILED: 1 error(s)" in out, out
    errors = [line for line in out.splitlines() if line.startswith("  error:")]
    expected = {"truncated_chunk": "has 1", "missing_chunk": "chunk-0-0.bin is missing",
                "missing_index": "val/index.json is missing", "missing_samples": "val/samples.npz is missing",
                "wrong_count": "7 records in vitkit_shards.json"}[damage]
    assert len(errors) == 1 and expected in errors[0], out
    assert "train 12 records (cat 4, dog 4, fox 4), 12 read and decoded" in out  # the other split still checked
    assert "fix: write it again: vitkit prepare --from IMAGE_FOLDER --to" in out


def test_a_folder_of_another_version_is_refused_with_how_to_prepare(shards, tmp_path, capsys):
    copy = tmp_path / "copy"
    shutil.copytree(shards, copy)
    manifest = json.loads((copy / "vitkit_shards.json").read_text())
    (copy / "vitkit_shards.json").write_text(json.dumps({**manifest, "version": 99}))
    code, out = _check(copy, capsys)
    assert code == 1 and "version 99" in out and "vitkit prepare" in out, out
