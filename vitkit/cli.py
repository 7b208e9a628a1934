"""The ``vitkit`` command.

``vitkit fit|validate|test|predict -c CONFIG [--key value ...]`` runs Lightning's CLI over one task and the
shared ``VisionDataModule``; the data's class count, class names, channels and image size are linked into the
task. The other sub-commands (``vitkit models``, ``vitkit attention``, ...) live one per module in
``vitkit/commands/``, each with ``add_arguments(parser)`` and ``run(args) -> int``.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import sys

from vitkit.errors import find_user_error

LIGHTNING_COMMANDS = ("fit", "validate", "test", "predict")
COMMANDS = {  # name → module under vitkit.commands
    "models": "models",
    "attention": "attention",
    "sample": "sample",
    "detect": "detect",
    "bench": "bench",
    "check-data": "check_data",
    "export": "export",
}


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    _show_vitkit_logs()
    try:
        return _dispatch(argv)
    except Exception as e:  # bad input anywhere (often wrapped by jsonargparse/Lightning): message, no traceback
        user_error = find_user_error(e)
        if user_error is None:
            raise
        print(f"vitkit: error: {user_error}", file=sys.stderr)
        return 2


def _dispatch(argv: list[str]) -> int:
    if argv and argv[0] in COMMANDS:
        module = importlib.import_module(f"vitkit.commands.{COMMANDS[argv[0]]}")
        parser = argparse.ArgumentParser(prog=f"vitkit {argv[0]}", description=module.__doc__)
        module.add_arguments(parser)
        return module.run(parser.parse_args(argv[1:]))
    if not argv or argv[0] in ("-h", "--help") or argv[0] not in LIGHTNING_COMMANDS:
        _print_usage()
        return 0 if not argv or argv[0] in ("-h", "--help") else 2
    from vitkit.trainer import run_lightning_cli

    run_lightning_cli(argv)
    return 0


def _show_vitkit_logs() -> None:
    """Print vitkit's INFO messages (load reports, dataset summaries) on stderr, once, unless the caller set up
    logging for the ``vitkit`` logger already. In a distributed run only process 0 prints them; warnings come from
    every process, marked with its rank."""
    log = logging.getLogger("vitkit")
    if not log.handlers:
        handler = _StderrHandler()
        handler.setFormatter(logging.Formatter("%(name)s: %(rank_prefix)s%(message)s"))
        handler.addFilter(_rank_filter)
        log.addHandler(handler)
        log.setLevel(logging.INFO)


class _StderrHandler(logging.StreamHandler):
    """Writes to whatever ``sys.stderr`` is when a message comes: a caller that swaps it (a test harness capturing
    output, a notebook) does not leave the handler writing to a closed stream."""

    @property
    def stream(self):
        return sys.stderr

    @stream.setter
    def stream(self, value) -> None:
        pass


def _rank_filter(record: logging.LogRecord) -> bool:
    rank = _process_rank()
    record.rank_prefix = f"[rank {rank}] " if rank else ""
    return rank == 0 or record.levelno >= logging.WARNING


def _process_rank() -> int:
    """This process's global rank: Lightning's once it has set up the strategy, else the launcher's variables."""
    lightning = sys.modules.get("lightning.fabric.utilities.rank_zero")
    rank = getattr(getattr(lightning, "rank_zero_only", None), "rank", None)
    if rank is not None:
        return int(rank)
    for key in ("RANK", "LOCAL_RANK", "SLURM_PROCID"):  # Lightning's order
        if key in os.environ:
            return int(os.environ[key])
    return 0


def _print_usage() -> None:
    lines = ["usage: vitkit COMMAND ...", "", "training (Lightning CLI; `vitkit fit --help` for every option):"]
    lines += [f"  {c:<10} vitkit {c} -c configs/<family>/<dataset>.yaml [--key value ...]" for c in LIGHTNING_COMMANDS]
    lines += ["", "tools:"]
    for name, mod in COMMANDS.items():
        doc = (importlib.import_module(f"vitkit.commands.{mod}").__doc__ or "").strip().splitlines()[0]
        lines.append(f"  {name:<10} {doc}")
    print("\n".join(lines))


if __name__ == "__main__":
    sys.exit(main())
