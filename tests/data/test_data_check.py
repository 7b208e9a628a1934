"""``check_coco`` and ``vitkit check-data``: every listed defect of a broken annotation file is reported with its fix;
errors give exit status 1; image folders are checked file by file."""

from __future__ import annotations

import json

import pytest
from conftest import write_coco, write_image_folder
from PIL import Image

from vitkit.cli import main
from vitkit.data.coco_check import check_coco, load_json

CATEGORIES = [{"id": 2, "name": "cat"}, {"id": 5, "name": "dog"}]


def _broken(root):
    """One file with every defect check-data knows (one per annotation or image where possible)."""
    images = [
        {"id": 1, "file_name": "ok.png", "width": 40, "height": 30},
        {"id": 2, "file_name": "missing.png", "width": 40, "height": 30},  # no such file
        {"id": 3, "file_name": "corrupt.png", "width": 40, "height": 30},  # not an image
        {"id": 4, "file_name": "small.png", "width": 40, "height": 30},  # the file is 20×10
        {"id": 1, "file_name": "dup.png", "width": 40, "height": 30},  # duplicate image id
        {"id": 6, "file_name": "nosize.png"},  # width/height missing
        {"file_name": "noid.png", "width": 8, "height": 8},  # id missing
        {"id": 8, "width": 8, "height": 8},  # file_name missing
        {"id": 9, "file_name": "empty.png", "width": 8, "height": 8},  # no annotations (a note)
    ]
    ann = {"image_id": 1, "category_id": 2, "bbox": [1, 1, 5, 5], "area": 25, "iscrowd": 0}
    annotations = [
        {"id": 1, **ann},
        {"id": 1, **ann},  # duplicate annotation id
        {"id": 3, **{**ann, "bbox": [30, 20, 20, 20]}},  # past the right and bottom edges
        {"id": 4, **{**ann, "bbox": [50, 40, 5, 5]}},  # entirely outside
        {"id": 5, **{**ann, "bbox": [3, 3, 0, 4]}},  # zero width
        {"id": 6, **{**ann, "category_id": 99}},  # unknown category
        {"id": 7, **{**ann, "image_id": 77}},  # unknown image
        {"id": 8, **{**ann, "bbox": [1, 2, 3]}},  # not 4 numbers
        {k: v for k, v in {"id": 9, **ann}.items() if k != "bbox"},
        {k: v for k, v in {"id": 10, **ann}.items() if k != "image_id"},
        {k: v for k, v in {"id": 11, **ann}.items() if k != "category_id"},
        {k: v for k, v in ann.items() if k != "id"},
        {k: v for k, v in {"id": 13, **ann}.items() if k not in ("area", "iscrowd")},
    ]
    categories = [*CATEGORIES, {"id": 5, "name": "dog again"}, {"id": 6}, {"name": "noid"}]
    pixels = {"small.png": Image.new("RGB", (20, 10))}
    path = write_coco(root, images, annotations, categories, info=False, pixels=pixels)
    (root / "train2017" / "missing.png").unlink()
    (root / "train2017" / "corrupt.png").write_bytes(b"not a png")
    return path


EXPECTED = {
    "error": {"image_file_missing", "image_unreadable", "image_size_mismatch", "duplicate_image_id",
              "image_missing_width", "image_missing_height", "image_missing_id", "image_missing_file_name",
              "duplicate_annotation_id", "unknown_category_id", "unknown_image_id", "bad_bbox",
              "annotation_missing_bbox", "annotation_missing_image_id", "annotation_missing_category_id",
              "annotation_missing_id", "duplicate_category_id", "category_missing_name", "category_missing_id"},
    "warning": {"missing_info", "box_partly_outside", "box_outside", "box_nonpositive", "annotation_missing_area",
                "annotation_missing_iscrowd"},
    "note": {"category_ids_remapped", "images_without_annotations"},
}


def test_each_defect_is_reported_with_its_severity(tmp_path):
    path = _broken(tmp_path)
    report = check_coco(load_json(path), path, tmp_path / "train2017", verify_images=True)
    for severity, codes in EXPECTED.items():
        found = {p.code for p in report.of(severity)}
        assert codes <= found, f"{severity}: missing {sorted(codes - found)}"
    assert all(p.fix for p in report.problems)
    # without reading the images, the missing file is still found; the unreadable and mis-sized ones need a read
    quick = check_coco(load_json(path), path, tmp_path / "train2017")
    assert "image_file_missing" in quick.codes and not {"image_unreadable", "image_size_mismatch"} & quick.codes


def test_structural_defects(tmp_path):
    def codes(data):
        return check_coco(data, "x.json", None).codes

    assert codes([1, 2]) == {"not_object"}
    assert {"missing_images", "missing_annotations", "missing_categories", "missing_info"} <= codes({})
    assert {"no_images", "no_categories"} <= codes({"images": [], "annotations": [], "categories": [], "info": {}})
    image = {"id": 1, "file_name": "a.png", "width": 4, "height": 4}
    assert "no_annotations" in codes({"images": [image], "annotations": [], "categories": CATEGORIES})


def test_xyxy_boxes_are_recognised(tmp_path):
    images = [{"id": i, "file_name": f"{i}.png", "width": 100, "height": 80} for i in range(1, 4)]
    xyxy = [[10, 10, 60, 50], [50, 30, 90, 70], [5, 40, 30, 75]]  # x2 > x1, y2 > y1: fine as corners
    annotations = [{"id": i + 1, "image_id": i + 1, "category_id": 2, "bbox": b, "area": 1, "iscrowd": 0}
                   for i, b in enumerate(xyxy)]
    path = write_coco(tmp_path, images, annotations, CATEGORIES)
    report = check_coco(load_json(path), path, tmp_path / "train2017")
    assert "boxes_look_xyxy" in {p.code for p in report.errors}
    assert "[x, y, width, height]" in next(p.fix for p in report.problems if p.code == "boxes_look_xyxy")


def test_check_data_command(tmp_path, capsys):
    path = _broken(tmp_path / "broken")
    images = tmp_path / "broken" / "train2017"
    assert main(["check-data", "--ann", str(path), "--images", str(images), "--per-kind", "2"]) == 1
    out = capsys.readouterr().out
    assert "error: images[1] (id 2): file" in out and "missing.png not found" in out
    assert 'fix: give every annotation "bbox": [x, y, width, height] in pixels' in out
    assert "warning: annotations[2] (id 3): bbox [30, 20, 20, 20] extends past its 40×30 image" in out
    assert "FAILED:" in out and "training would refuse to start" in out

    good = write_coco(tmp_path / "good", [{"id": 1, "file_name": "a.png", "width": 8, "height": 6}],
                      [{"id": 1, "image_id": 1, "category_id": 2, "bbox": [1, 1, 2, 2], "area": 4, "iscrowd": 0}],
                      CATEGORIES)
    assert main(["check-data", "--root", str(tmp_path / "good")]) == 0  # the COCO layout under --root
    assert f"{good}: 1 images, 1 annotations, 2 categories" in capsys.readouterr().out
    # a root with no data is a user mistake like any other: one line, exit status 2
    assert main(["check-data", "--root", str(tmp_path / "nothing")]) == 2
    assert "instances_train2017.json not found" in capsys.readouterr().err


def test_check_data_on_an_image_folder(tmp_path, capsys):
    root = write_image_folder(tmp_path / "pets", {"train": {"cat": 2, "dog": 2}, "val": {"cat": 1, "dog": 1}})
    assert main(["check-data", "--dataset", "imagefolder", "--root", str(root)]) == 0
    assert "2 classes; 4 train images, 2 val images" in capsys.readouterr().out
    (root / "train" / "dog" / "001.png").write_bytes(b"\x89PNG broken")
    (root / "val" / "cat" / "000.png").unlink()
    assert main(["check-data", "--dataset", "imagefolder", "--root", str(root)]) == 1
    out = capsys.readouterr().out
    assert "train/dog/001.png: cannot read image" in out and "val/cat" in out and "has no images" in out
    assert main(["check-data", "--dataset", "imagefolder", "--root", str(tmp_path / "nope")]) == 1
    assert "does not exist" in capsys.readouterr().out


@pytest.mark.parametrize("field", ["info", "area", "iscrowd"])
def test_common_pitfalls_are_warnings_with_a_fix(tmp_path, field):
    ann = {"id": 1, "image_id": 1, "category_id": 2, "bbox": [1, 1, 2, 2], "area": 4, "iscrowd": 0}
    ann.pop(field, None)
    path = write_coco(tmp_path, [{"id": 1, "file_name": "a.png", "width": 8, "height": 6}], [ann], CATEGORIES,
                      info=field != "info")
    report = check_coco(json.loads(path.read_text()), path, tmp_path / "train2017")
    assert not report.errors and len(report.warnings) == 1
    assert field in report.warnings[0].message and report.warnings[0].fix
