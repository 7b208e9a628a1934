"""Run ``vitkit`` commands one after the other in every process of a ``torchrun`` launch (see ``test_ddp.py``).

    torchrun --standalone --nproc_per_node 2 tests/training/ddp_driver.py COMMANDS.json

``COMMANDS.json`` holds a list of argument lists, e.g. ``[["fit", "-c", "...", "--trainer.devices", "2"]]``.
"""

import json
import sys
from pathlib import Path

from vitkit.cli import main

if __name__ == "__main__":
    for args in json.loads(Path(sys.argv[1]).read_text()):
        code = main(args)
        if code:
            sys.exit(code)
