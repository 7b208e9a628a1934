"""The ``vitkit`` command.

``vitkit fit|validate|test|predict -c CONFIG [--key value ...]`` runs Lightning's CLI over one task and the
shared ``VisionDataModule``; the data's class count, class names, channels and image size are linked into the
task. The other sub-commands (``vitkit models``, ``vitkit attention``, ...) live one per module in
``vitkit/commands/``, each with ``add_arguments(parser)`` and ``run(args) -> int``.

Every user mistake — a bad argument of any sub-command, a config value, a data or checkpoint problem — is printed
as one line, ``vitkit: error: <what> — <how to fix>``, with exit status 2; anything else is a bug and keeps its
traceback.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import re
import sys

from vitkit.errors import VitkitError, find_user_error

LIGHTNING_COMMANDS = ("fit", "validate", "test", "predict")
COMMANDS = {  # name → module under vitkit.commands
    "models": "models",
    "attention": "attention",
    "sample": "sample",
    "detect": "detect",
    "bench": "bench",
    "check-data": "check_data",
    "export": "export",
    "prepare": "prepare",
}


class UsageError(VitkitError):
    """A command-line argument that cannot be parsed or is missing."""


class CommandParser(argparse.ArgumentParser):
    """``argparse`` for the tool sub-commands, raising ``UsageError`` instead of printing usage and exiting."""

    def error(self, message: str):
        raise UsageError(f"{self.prog}: {message}", f"see `{self.prog} --help`")


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    _show_vitkit_logs()
    try:
        return _dispatch(argv)
    except argparse.ArgumentError as e:  # jsonargparse's, for the Lightning sub-commands
        command = argv[0] if argv else "fit"
        print(f"vitkit: error: {parser_error_line(str(e), command)}", file=sys.stderr)
        return 2
    except Exception as e:  # bad input anywhere (often wrapped by jsonargparse/Lightning): one line, no traceback
        user_error = find_user_error(e)
        if user_error is None:
            raise
        print(f"vitkit: error: {user_error.one_line()}", file=sys.stderr)
        return 2


def _dispatch(argv: list[str]) -> int:
    if argv and argv[0] == "predict" and _predicts_files(argv[1:]):  # vitkit predict --ckpt CKPT PATH... --out FILE
        return _run_command("predict", "predict", argv[1:])
    if argv and argv[0] in COMMANDS:
        return _run_command(argv[0], COMMANDS[argv[0]], argv[1:])
    if not argv or argv[0] in ("-h", "--help"):
        _print_usage()
        return 0
    if argv[0] not in LIGHTNING_COMMANDS:
        raise UsageError(f"unknown command {argv[0]!r}",
                         f"use one of {', '.join(LIGHTNING_COMMANDS + tuple(COMMANDS))} (`vitkit --help`)")
    from vitkit.trainer import run_lightning_cli

    run_lightning_cli(argv)
    return 0


def _predicts_files(args: list[str]) -> bool:
    """``vitkit predict`` on image files (``--ckpt`` without a config), not Lightning's predict over a test split."""
    def given(*flags: str) -> bool:
        return any(a in flags or a.startswith(tuple(f"{f}=" for f in flags)) for a in args)

    return given("--ckpt") and not given("-c", "--config")


def _run_command(name: str, module_name: str, args: list[str]) -> int:
    module = importlib.import_module(f"vitkit.commands.{module_name}")
    parser = CommandParser(prog=f"vitkit {name}", description=module.__doc__, allow_abbrev=False)
    module.add_arguments(parser)
    if getattr(module, "TAKES_DATA_FLAGS", False):  # check-data: --data.* as for fit, parsed by the module
        known, extra = parser.parse_known_args(args)
        return module.run(known, extra)
    return module.run(parser.parse_args(args))


_BOILERPLATE = ("Does not validate against any of the Union subtypes", "Subtypes:", "Errors:", "Given value",
                "- Expected a <class 'NoneType'>", "Expected a <class 'NoneType'>")


def parser_error_line(message: str, command: str = "fit") -> str:
    """jsonargparse's (multi-line, nested) parsing error → ``<flag>: <what> — <how to fix>`` on one line."""
    fix = f"see `vitkit {command} --help` for the options and their types"
    unrecognised = re.search(r"[Uu]nrecognized arguments: (.+)", message)
    if unrecognised:
        flags = [a for a in unrecognised.group(1).split() if a.startswith("-")] or unrecognised.group(1).split()
        return f"unrecognised argument {' '.join(flags)} — {fix} (flags are --<section>.<key>, e.g. " \
               f"--trainer.max_epochs)"
    keys = re.findall(r'Parser key "([^"]+)"', message)
    nested = re.search(r"NestedArg\(key='([^']+)'", message)
    if nested and keys and keys[-1] == keys[0] and nested.group(1) not in keys:
        keys.append(nested.group(1))
    flag = keys[0] if keys else ""
    if len(keys) > 1:
        nested_class = keys[0] in ("model", "data") and keys[-1] != "class_path"
        flag = f"{keys[0]}.init_args.{keys[-1]}" if nested_class else f"{keys[0]}.{keys[-1]}"
    details = [line.strip().lstrip("- ").strip() for line in message.splitlines()]
    skip = _BOILERPLATE + ("Problem with given class_path",)
    details = [re.sub(r'^Parser key "[^"]+": ', "", d) for d in details if d and not d.startswith(skip)]
    details = [d for d in details if not re.fullmatch(r'Parser key "[^"]+":', d)]
    detail = details[0] if details else message.strip().splitlines()[-1]
    detail = re.sub(r"Expected a <class '(\w+)'>\. Got value: (.*)", r"expected a \1, got '\2'", detail)
    detail = re.sub(r"Expected a typing\.Literal\[(.*)\]\. Got value: (.*)", r"expected one of \1, got '\2'", detail)
    if re.match(r"Expected an instantiatable class, but .* is abstract", detail):
        detail, fix = "the class is not given", f"give it first (e.g. --{keys[0] if keys else flag} " \
                      f"lightning.pytorch.loggers.CSVLogger), then its arguments; {fix}"
    return f"--{flag}: {detail} — {fix}" if flag else f"{detail} — {fix}"


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
