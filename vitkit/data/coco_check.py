"""Validation of a COCO-format instances file (Lin et al. 2014, the object-detection part) against its image folder.

The parts vitkit reads::

    {"images":      [{"id": int, "file_name": str, "width": int, "height": int}, ...],
     "annotations": [{"id": int, "image_id": int, "category_id": int, "bbox": [x, y, w, h],
                      "area": float, "iscrowd": 0 | 1}, ...],
     "categories":  [{"id": int, "name": str}, ...],
     "info": {...}}

``bbox`` is ``[x, y, width, height]`` in pixels with ``(x, y)`` the top-left corner (not DETR's normalised
``(cx, cy, w, h)``, not ``[x1, y1, x2, y2]``). ``check_coco`` reports every deviation as a ``Problem`` with its fix
(``vitkit.data.checks``); the same function runs before training (files only stat-ed) and in ``vitkit check-data``
(``verify_images``: each image's header is read, its size compared; ``decode``: every pixel decoded).
"""

from __future__ import annotations

import errno
import json
import math
import os
from pathlib import Path
from typing import Any

from vitkit.data.checks import CheckReport

BOX_TOLERANCE = 1.0  # pixels a box may stick out of its image unreported (COCO's own boxes do, by fractions)
XYXY_FRACTION = 0.2  # share of boxes fitting only as [x1, y1, x2, y2] from which the file is called xyxy

REQUIRED = {"image": ("id", "file_name", "width", "height"), "annotation": ("id", "image_id", "category_id", "bbox"),
            "category": ("id", "name")}
RECOMMENDED = {"annotation": ("area", "iscrowd")}
FIELD_FIX = {
    ("image", "id"): 'give every image a unique integer "id" (annotations refer to it by "image_id")',
    ("image", "file_name"): 'give every image its "file_name", relative to the images folder',
    ("image", "width"): 'give every image its "width" and "height" in pixels, as the image file shows it',
    ("image", "height"): 'give every image its "width" and "height" in pixels, as the image file shows it',
    ("annotation", "id"): 'give every annotation a unique integer "id" (COCO evaluation indexes annotations by it; '
                          'numbering them 1, 2, 3, ... is fine)',
    ("annotation", "image_id"): 'give every annotation the "image_id" of the image it belongs to',
    ("annotation", "category_id"): 'give every annotation the "category_id" of its class (an id of "categories")',
    ("annotation", "bbox"): 'give every annotation "bbox": [x, y, width, height] in pixels, (x, y) the top-left',
    ("annotation", "area"): 'add "area" (object area in pixels; the box\'s width × height will do): COCO evaluation '
                            'sorts objects into small/medium/large by it and fails without it. vitkit fills it in',
    ("annotation", "iscrowd"): 'add "iscrowd": 0 (1 marks a crowd region, ignored in training and evaluation); COCO '
                               'evaluation fails without it. vitkit reads a missing one as 0',
    ("category", "id"): 'give every category a unique integer "id" (annotations refer to it by "category_id")',
    ("category", "name"): 'give every category a "name" (the class name in logs and drawn detections)',
}
PLURAL = {"image": "images", "annotation": "annotations", "category": "categories"}
TOP_FIX = {
    "images": 'add "images": [{"id": 1, "file_name": "a.jpg", "width": W, "height": H}, ...]',
    "annotations": 'add "annotations": [...] (an empty list if no image has objects)',
    "categories": 'add "categories": [{"id": 1, "name": "cat"}, ...], one entry per class',
}


def load_json(path: Path) -> Any:
    """Parse an annotation file; ``DataError`` naming the file (and the line) when it is missing or not JSON."""
    from vitkit.data.errors import DataError

    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except FileNotFoundError as e:
        raise DataError(f"annotation file {path} not found",
                        "check the path (--data.train_ann / --data.val_ann)") from e
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise DataError(f"{path} is not valid JSON ({e})", "export the annotations again as COCO JSON") from e


def check_coco(data: Any, source: str | Path, images_dir: Path | None, *, check_files: bool = True,
               verify_images: bool = False, decode: bool = False) -> CheckReport:
    """All problems of parsed annotation file ``data`` (named ``source`` in messages) with images under
    ``images_dir``: files checked to exist when ``check_files``; headers read and sizes compared when
    ``verify_images``; pixels decoded when ``decode``."""
    report = CheckReport(str(source))
    top = _check_top(data, report)
    if top is None:
        return report
    images, annotations, categories = top
    report.summary = f"{len(images)} images, {len(annotations)} annotations, {len(categories)} categories"
    category_ids = _check_categories(categories, report)
    sizes = _check_images(images, report)
    if check_files and images_dir is not None:
        _check_files(images, sizes, Path(images_dir), report, verify_images or decode, decode)
    _check_annotations(annotations, sizes, category_ids, report)
    return report


def _check_top(data: Any, report: CheckReport) -> tuple[list, list, list] | None:
    if not isinstance(data, dict):
        report.add("error", "not_object", "", f"the file holds a JSON {type(data).__name__}, not an object",
                   'the file must hold one JSON object with "images", "annotations" and "categories" lists')
        return None
    parts = []
    for key in ("images", "annotations", "categories"):
        value = data.get(key)
        if not isinstance(value, list):
            what = "is missing" if key not in data else f"is a {type(value).__name__}, not a list"
            report.add("error", f"missing_{key}", "", f'"{key}" {what}', TOP_FIX[key])
            value = []
        parts.append(value)
    if "info" not in data:
        report.add("warning", "missing_info", "", '"info" is missing',
                   'add "info": {}: some COCO tools (pycocotools 2.0.7\'s loadRes, evaluators built on it) fail '
                   "with KeyError: 'info' without it")
    if "images" in data and not parts[0]:
        report.add("error", "no_images", "", 'the "images" list is empty: there is nothing to train on',
                   "list the dataset's images (or point at the right annotation file)")
    if "categories" in data and not parts[2]:
        report.add("error", "no_categories", "", 'the "categories" list is empty', TOP_FIX["categories"])
    if "annotations" in data and parts[1] == [] and parts[0]:
        report.add("warning", "no_annotations", "", "no image has any annotation: a detector learns nothing from "
                   "this file", "check that this is the right file (e.g. not the COCO test-dev image list)")
    return parts[0], parts[1], parts[2]


def _entries(items: list, kind: str, report: CheckReport):
    """``(where, entry)`` for each dict of ``items``; the rest reported. Missing fields are reported here too."""
    for i, item in enumerate(items):
        where = f"{PLURAL[kind]}[{i}]"
        if not isinstance(item, dict):
            report.add("error", f"{kind}_not_object", where, f"is a {type(item).__name__}, not an object",
                       f"every entry of \"{PLURAL[kind]}\" must be a JSON object")
            continue
        if _is_int(item.get("id")):
            where += f" (id {item['id']})"
        for severity, fields in (("error", REQUIRED.get(kind, ())), ("warning", RECOMMENDED.get(kind, ()))):
            for name in fields:
                if name not in item:
                    report.add(severity, f"{kind}_missing_{name}", where, f'"{name}" is missing',
                               FIELD_FIX[(kind, name)])
        yield where, item


def _check_ids(where: str, item: dict, kind: str, seen: set, report: CheckReport) -> bool:
    """Report a non-integer or repeated ``id``; True when the id is a new integer."""
    if "id" not in item:
        return False
    if not _is_int(item["id"]):
        report.add("error", f"{kind}_bad_id", where, f"id {item['id']!r} is not an integer",
                   f"use integer {kind} ids (vitkit and COCO evaluation key {PLURAL[kind]} by them)")
        return False
    if item["id"] in seen:
        report.add("error", f"duplicate_{kind}_id", where, f"{kind} id {item['id']} is used more than once",
                   f"give every {kind} its own id (renumber the {PLURAL[kind]} 1, 2, 3, ... and update references to "
                   f"them)")
        return False
    seen.add(item["id"])
    return True


def _check_categories(categories: list, report: CheckReport) -> dict[int, str]:
    ids: set[int] = set()
    names: dict[str, int] = {}
    valid: dict[int, str] = {}
    for where, cat in _entries(categories, "category", report):
        if _check_ids(where, cat, "category", ids, report):
            valid[cat["id"]] = str(cat.get("name", cat["id"]))
            if "name" in cat and cat["name"] in names:
                report.add("warning", "duplicate_category_name", where, f"name {cat['name']!r} is also category "
                           f"{names[cat['name']]}'s", "merge the two categories or rename one")
            names.setdefault(cat.get("name"), cat["id"])
    ordered = sorted(valid)
    if ordered and ordered != list(range(len(ordered))):
        shown = ", ".join(map(str, ordered[:12])) + (", ..." if len(ordered) > 12 else "")
        report.add("note", "category_ids_remapped", "", f"category ids [{shown}] are not 0..{len(ordered) - 1}",
                   f"nothing to do: vitkit maps them to labels 0..{len(ordered) - 1} in id order and back to these "
                   f"ids in its outputs (the mapping is saved with the checkpoint)")
    return valid


def _check_images(images: list, report: CheckReport) -> dict[int, tuple[float, float] | None]:
    """``{image id: (width, height)}`` for every image with a valid id (size None when it is not valid)."""
    ids: set[int] = set()
    files: dict[str, str] = {}
    sizes = {}
    for where, img in _entries(images, "image", report):
        new_id = _check_ids(where, img, "image", ids, report)
        w, h = img.get("width"), img.get("height")
        size_ok = _is_number(w) and _is_number(h) and w > 0 and h > 0
        if ("width" in img and "height" in img) and not size_ok:
            report.add("error", "image_bad_size", where, f"width {w!r} / height {h!r} are not positive numbers",
                       FIELD_FIX[("image", "width")])
        if new_id:
            sizes[img["id"]] = (float(w), float(h)) if size_ok else None
        name = img.get("file_name")
        if isinstance(name, str) and name in files:
            report.add("warning", "duplicate_file_name", where, f"file {name!r} is also {files[name]}",
                       "list each image file once (merge the entries' annotations under one image id)")
        elif isinstance(name, str):
            files[name] = where
    return sizes


def _check_files(images: list, sizes: dict, images_dir: Path, report: CheckReport, verify: bool,
                 decode: bool) -> None:
    if not images_dir.is_dir():
        report.add("error", "images_dir_missing", "", f"images folder {images_dir} does not exist",
                   "point the images path (--data.train_images / --data.val_images, or --images for check-data) "
                   "at the folder the file_name entries are relative to")
        return
    for i, img in enumerate(images):
        if not isinstance(img, dict) or not isinstance(img.get("file_name"), str):
            continue
        where = f"images[{i}]" + (f" (id {img['id']})" if _is_int(img.get("id")) else "")
        path = images_dir / img["file_name"]
        if not path.is_file():
            report.add("error", "image_file_missing", where, _why_missing(path),
                       "add the file, fix its file_name (relative to the images folder), or remove the image entry "
                       "and its annotations")
        elif verify:
            _verify_image(path, where, sizes.get(img.get("id")), report, decode)


def _why_missing(path: Path) -> str:
    """What stands at ``path`` instead of an image file: nothing, a folder, or a link that leads nowhere."""
    if path.is_symlink():
        try:
            path.resolve(strict=True)
        except RuntimeError:  # Python 3.11 reports a link loop this way, later versions as OSError
            return f"file {path} is a symbolic-link loop"
        except OSError as e:
            if e.errno == errno.ELOOP:
                return f"file {path} is a symbolic-link loop"
            return f"file {path} is a symbolic link to {os.readlink(path)}, which does not exist"
    if path.is_dir():
        return f"{path} is a folder, not an image file"
    return f"file {path} not found"


def _verify_image(path: Path, where: str, size: tuple[float, float] | None, report: CheckReport,
                  decode: bool) -> None:
    from PIL import Image

    from vitkit.data.errors import DataError
    from vitkit.data.imagefolder import read_image

    try:
        if decode:
            h, w = read_image(path).shape[:2]
        else:
            with Image.open(path) as img:
                w, h = img.size
                if img.getexif().get(0x0112, 1) in (5, 6, 7, 8):  # EXIF rotation by 90°: vitkit reads it upright
                    w, h = h, w
    except (DataError, OSError, ValueError, SyntaxError, Image.DecompressionBombError) as e:
        report.add("error", "image_unreadable", where, f"cannot read {path}: {e}",
                   "replace the file with a readable image, or remove the image entry and its annotations")
        return
    if size is not None and (abs(size[0] - w) > 0.5 or abs(size[1] - h) > 0.5):
        report.add("error", "image_size_mismatch", where, f"{path} is {w}×{h} pixels but the entry says "
                   f"{size[0]:g}×{size[1]:g}", "set width/height to the file's size (if the boxes were drawn on "
                   "another size of the image, rescale them too; a camera's EXIF rotation swaps width and height)")


def _check_annotations(annotations: list, sizes: dict, category_ids: dict, report: CheckReport) -> None:
    ids: set[int] = set()
    annotated: set[int] = set()
    used: set[int] = set()
    boxes = xyxy = 0
    for where, ann in _entries(annotations, "annotation", report):
        _check_ids(where, ann, "annotation", ids, report)
        image_id, category_id = ann.get("image_id"), ann.get("category_id")
        image_known = _is_int(image_id) and image_id in sizes  # ids are integers (checked), so others are unknown
        if "image_id" in ann and not image_known:
            report.add("error", "unknown_image_id", where, f"image_id {image_id!r} is not an id of \"images\"",
                       "point image_id at a listed image (or add the image entry)")
        if "category_id" in ann and not (_is_int(category_id) and category_id in category_ids):
            report.add("error", "unknown_category_id", where, f"category_id {category_id!r} is not an id of "
                       f"\"categories\" ({', '.join(map(str, sorted(category_ids)[:12]))})",
                       "add the category to \"categories\" or fix the annotation's category_id")
        elif "category_id" in ann:
            used.add(category_id)
        if image_known:
            annotated.add(image_id)
        box = _check_bbox(where, ann, report)
        if box is not None and image_known and sizes[image_id] is not None:
            boxes += 1
            xyxy += _check_geometry(where, box, sizes[image_id], report)
    if xyxy and xyxy >= XYXY_FRACTION * boxes:
        report.add("error", "boxes_look_xyxy", "", f"{xyxy} of {boxes} boxes only fit their image when read as "
                   "[x1, y1, x2, y2]", "COCO bbox is [x, y, width, height]: convert with width = x2 - x1, "
                   "height = y2 - y1 (and DETR's normalised (cx, cy, w, h) is not COCO either)")
    _note_unused(annotated, used, sizes, category_ids, report)


def _check_bbox(where: str, ann: dict, report: CheckReport) -> tuple[float, ...] | None:
    bbox = ann.get("bbox")
    if "bbox" not in ann:
        return None
    if not (isinstance(bbox, list) and len(bbox) == 4 and all(_is_number(v) and math.isfinite(v) for v in bbox)):
        report.add("error", "bad_bbox", where, f"bbox {bbox!r} is not 4 finite numbers",
                   FIELD_FIX[("annotation", "bbox")])
        return None
    return tuple(float(v) for v in bbox)


def _check_geometry(where: str, box: tuple[float, ...], size: tuple[float, float], report: CheckReport) -> int:
    """Report a box with non-positive size or outside its image; 1 when it fits only as [x1, y1, x2, y2]."""
    x, y, w, h = box
    W, H = size
    tol = BOX_TOLERANCE
    if w <= 0 or h <= 0:
        report.add("warning", "box_nonpositive", where, f"bbox {_fmt(box)} has non-positive width or height",
                   "fix or delete the annotation (vitkit drops it from training and counts it)")
        return 0
    if x >= W or y >= H or x + w <= 0 or y + h <= 0:
        report.add("warning", "box_outside", where, f"bbox {_fmt(box)} lies outside its {W:g}×{H:g} image",
                   "fix or delete the annotation (vitkit drops it from training and counts it)")
        return 0
    if x >= -tol and y >= -tol and x + w <= W + tol and y + h <= H + tol:
        return 0
    as_xyxy = 0 <= x < w <= W + tol and 0 <= y < h <= H + tol
    hint = " (read as [x1, y1, x2, y2] it would fit: is the file in xyxy?)" if as_xyxy else ""
    report.add("warning", "box_partly_outside", where, f"bbox {_fmt(box)} extends past its {W:g}×{H:g} image{hint}",
               "keep boxes inside the image (vitkit clips them to it)")
    return int(as_xyxy)


def _note_unused(annotated: set, used: set, sizes: dict, category_ids: dict, report: CheckReport) -> None:
    empty = len(set(sizes) - annotated)
    if empty:
        report.add("note", "images_without_annotations", "", f"{empty} image(s) have no annotation",
                   "nothing to do if they truly show no object: vitkit keeps them (they teach 'no object')")
    unused = [f"{category_ids[c]} (id {c})" for c in sorted(set(category_ids) - used)]
    if unused:
        report.add("note", "category_unused", "", f"categories without annotations: {', '.join(unused[:10])}"
                   f"{' ...' if len(unused) > 10 else ''}", "nothing to do, unless the class should have examples "
                   "(a placeholder category such as a supercategory adds a class the model never sees)")


def _fmt(box: tuple[float, ...]) -> str:
    return "[" + ", ".join(f"{v:g}" for v in box) + "]"


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)
