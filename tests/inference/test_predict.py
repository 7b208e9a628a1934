"""``vitkit predict --ckpt CKPT PATH... --out FILE`` and ``vitkit.Predictor``: results per file, in file order,
equal to the model run on each image alone with the checkpoint's preprocessing."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
import torch
from PIL import Image

from vitkit.cli import _predicts_files, main
from vitkit.data.imagefolder import read_image
from vitkit.inference import ClassPrediction, Detections, Predictor
from vitkit.inference.outputs import write_predictions
from vitkit.tasks.shell import load_task


def _image(rng, h: int, w: int, mode: str = "RGB") -> Image.Image:
    return Image.fromarray((rng.random((h, w, 3)) * 255).astype(np.uint8)).convert(mode)


@pytest.fixture
def folder(tmp_path):
    """Images of mixed sizes and modes (one in a sub-folder), a text file and a corrupt JPEG."""
    rng = np.random.default_rng(0)
    (tmp_path / "sub").mkdir()
    _image(rng, 32, 32).save(tmp_path / "a.jpg")
    _image(rng, 50, 20, "L").save(tmp_path / "b.png")
    _image(rng, 17, 64, "RGBA").save(tmp_path / "sub" / "c.png")
    _image(rng, 40, 40).save(tmp_path / "sub" / "d.bmp")
    (tmp_path / "notes.txt").write_text("not an image")
    (tmp_path / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 truncated")
    return tmp_path


def _alone(ckpt, path) -> torch.Tensor:
    """The reference: the model on one image, prepared by the checkpoint's preprocessing, softmax."""
    from vitkit.data.preprocessing import Preprocessing

    task = load_task(ckpt)
    x = Preprocessing.from_dict(task.preprocessing)(read_image(path))[None]  # (1, C, h, w)
    with torch.no_grad():
        return task(x).softmax(-1)[0]


def test_classifier_csv_one_row_per_readable_image(classifier_ckpt, folder, tmp_path, capsys):
    out = tmp_path / "preds.csv"
    args = ["predict", "--ckpt", str(classifier_ckpt), str(folder), "--out", str(out), "--top-k", "3",
            "--batch-size", "3", "--workers", "1"]
    assert main(args) == 0
    printed = capsys.readouterr()
    assert "4 images predicted" in printed.out and "1 unreadable file(s) skipped" in printed.out
    assert "1 non-image file(s) ignored" in printed.out
    rows = list(csv.DictReader(out.open()))
    assert [r["path"] for r in rows] == [str(folder / n) for n in ("a.jpg", "b.png", "sub/c.png", "sub/d.bmp")]
    names = ["ant", "bee", "cat", "dog"]
    for row in rows:
        probs = _alone(classifier_ckpt, row["path"])
        top = probs.topk(3)
        assert [row[f"class_{i}"] for i in (1, 2, 3)] == [names[j] for j in top.indices.tolist()]
        assert [float(row[f"prob_{i}"]) for i in (1, 2, 3)] == pytest.approx(top.values.tolist(), abs=2e-6)


def test_unreadable_file_is_named(classifier_ckpt, folder, tmp_path, caplog):
    with caplog.at_level("WARNING"):
        assert main(["predict", "--ckpt", str(classifier_ckpt), str(folder), "--out", str(tmp_path / "p.json"),
                     "--workers", "0"]) == 0
    assert "broken.jpg" in caplog.text
    records = json.loads((tmp_path / "p.json").read_text())
    assert len(records) == 4 and len(records[0]["top_k"]) == 4  # top-5 of 4 classes: all 4


def test_python_api_on_paths_pil_images_and_tensors(classifier_ckpt, folder):
    predictor = Predictor.from_checkpoint(classifier_ckpt, top_k=2, device="cpu")
    paths = [str(folder / "a.jpg"), str(folder / "sub" / "d.bmp")]
    from_paths = predictor(paths)
    pil = [Image.open(p) for p in paths]
    from_pil = predictor(pil)
    from_tensors = predictor([torch.from_numpy(np.array(p.convert("RGB"))).permute(2, 0, 1) for p in pil])
    assert all(isinstance(r, ClassPrediction) for r in from_paths)
    assert [r.source for r in from_paths] == paths and [r.source for r in from_pil] == ["<image 0>", "<image 1>"]
    for a, b, c, path in zip(from_paths, from_pil, from_tensors, paths, strict=True):
        assert a.indices == b.indices == c.indices
        assert a.probs == pytest.approx(b.probs, abs=1e-6) and a.probs == pytest.approx(c.probs, abs=1e-6)
        assert a.prob == pytest.approx(_alone(classifier_ckpt, path).max().item(), abs=2e-6)


def test_empty_folder_and_wrong_suffix_are_one_line_errors(classifier_ckpt, tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    assert main(["predict", "--ckpt", str(classifier_ckpt), str(tmp_path / "empty"), "--out", "p.csv"]) == 2
    assert "holds no image files" in capsys.readouterr().err
    assert main(["predict", "--ckpt", str(classifier_ckpt), str(tmp_path), "--out", "p.txt"]) == 2
    assert "name it <something>.csv or .json" in capsys.readouterr().err


def test_detector_predictions_are_what_detect_writes(detector_ckpt, tmp_path):
    rng = np.random.default_rng(1)
    paths = []
    for i in range(2):  # one size: batched images need no padding, so batched == one at a time
        paths.append(tmp_path / f"im{i}.png")
        _image(rng, 40, 56).save(paths[-1])
    out = tmp_path / "preds.json"
    assert main(["predict", "--ckpt", str(detector_ckpt), *map(str, paths), "--out", str(out), "--threshold", "0",
                 "--workers", "0", "--batch-size", "2"]) == 0
    assert main(["detect", "--ckpt", str(detector_ckpt), *map(str, paths), "--out", str(tmp_path / "det"),
                 "--threshold", "0", "--device", "cpu"]) == 0
    predicted = json.loads(out.read_text())
    detected = json.loads((tmp_path / "det" / "detections.json").read_text())
    assert predicted["images"] == json.loads((tmp_path / "det" / "images.json").read_text())
    assert len(predicted["detections"]) == len(detected) == 2 * 8
    for p, d in zip(predicted["detections"], detected, strict=True):
        assert (p["image_id"], p["category_id"]) == (d["image_id"], d["category_id"])
        assert p["score"] == pytest.approx(d["score"], abs=1e-4)
        assert p["bbox"] == pytest.approx(d["bbox"], abs=1e-3)
    results = Predictor.from_checkpoint(detector_ckpt, threshold=0.0)([str(p) for p in paths])
    assert isinstance(results[0], Detections) and (results[0].height, results[0].width) == (40, 56)
    rows = list(csv.DictReader(write_predictions(results, tmp_path / "preds.csv").open()))
    assert len(rows) == 2 * 8 and rows[0]["path"] == str(paths[0]) and rows[0]["class"] in ("a", "b", "c")
    first = predicted["detections"][0]
    assert [float(rows[0][k]) for k in "xywh"] == pytest.approx(first["bbox"], abs=0.01)


def test_config_predict_still_goes_to_lightning():
    assert _predicts_files(["--ckpt", "m.ckpt", "img/", "--out", "p.csv"])
    assert _predicts_files(["--ckpt=m.ckpt", "img/", "--out", "p.csv"])
    assert not _predicts_files(["-c", "configs/vit/digits.yaml", "--ckpt_path", "last.ckpt"])
    assert not _predicts_files(["--config=configs/vit/digits.yaml", "--ckpt", "x"])


def test_a_generator_has_nothing_to_predict():
    from vitkit.data.preprocessing import Preprocessing
    from vitkit.errors import CheckpointError
    from vitkit.tasks import GenerationTask

    prep = Preprocessing("generation", 4, "resize", 3, (0.0,) * 3, (1.0,) * 3)
    with pytest.raises(CheckpointError, match="GenerationTask has nothing to predict from an image"):
        Predictor(GenerationTask("image_transformer_test"), prep)
