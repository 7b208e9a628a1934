"""Predict with a trained classifier or detector on image files and folders: one CSV or JSON of results.

``vitkit predict --ckpt CKPT PATH [PATH ...] --out FILE.csv|FILE.json``. Folders are searched recursively; each image
is prepared with the preprocessing saved in the checkpoint (whatever its size or mode). Classifiers write one row per
image (path, top-k classes and probabilities), detectors the detections as ``vitkit detect`` records them
(``vitkit.inference.outputs``). Unreadable files are named and skipped; other files are ignored. (``vitkit predict -c
CONFIG`` runs Lightning's prediction over the data's test split instead.)
"""

from __future__ import annotations

import argparse
import logging
import time

log = logging.getLogger(__name__)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--ckpt", required=True, help="Lightning checkpoint of a classification or detection run")
    parser.add_argument("paths", nargs="+", help="image files and folders (searched recursively)")
    parser.add_argument("--out", required=True, help="results file: .csv or .json")
    parser.add_argument("--top-k", type=int, default=5, help="classes per image (classifiers)")
    parser.add_argument("--threshold", type=float, default=0.7, help="keep detections scoring above this (detectors)")
    parser.add_argument("--batch-size", type=int, default=64, help="images per forward pass")
    parser.add_argument("--workers", type=int, default=None, help="DataLoader workers reading the files (default: up "
                                                                   "to 4, one per CPU core)")
    parser.add_argument("--device", default=None, help="cpu, cuda, ... (default: cuda when available)")
    parser.add_argument("--ema", action="store_true",
                        help="use the checkpoint's EMA weights (a run with --model.init_args.ema_decay)")


def run(args: argparse.Namespace) -> int:
    from vitkit.data.errors import DataError
    from vitkit.errors import ConfigError
    from vitkit.inference import Predictor
    from vitkit.inference.outputs import check_output, write_predictions

    out = check_output(args.out)
    if args.batch_size < 1 or (args.workers is not None and args.workers < 0):
        raise ConfigError(f"--batch-size {args.batch_size} / --workers {args.workers}",
                          "use a batch size >= 1 and workers >= 0")
    predictor = Predictor.from_checkpoint(args.ckpt, top_k=args.top_k, threshold=args.threshold, device=args.device,
                                          ema=args.ema)
    start = time.perf_counter()
    found = predictor.predict_files(args.paths, batch_size=args.batch_size, num_workers=args.workers)
    seconds = time.perf_counter() - start
    for _, why in found.skipped:
        log.warning("skipped: %s", why)
    if not found.results:
        raise DataError(f"none of the {len(found.skipped)} image files could be read", "see the files named above")
    write_predictions(found.results, out)
    notes = [f"{len(found.skipped)} unreadable file(s) skipped"] if found.skipped else []
    notes += [f"{len(found.ignored)} non-image file(s) ignored"] if found.ignored else []
    n = len(found.results)
    print(f"{n} images predicted in {seconds:.1f} s ({n / seconds:.0f} img/s), written to {out}"
          + (f"; {'; '.join(notes)}" if notes else ""))
    return 0
