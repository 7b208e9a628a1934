"""A process killed in the middle of a checkpoint write — after the new file's bytes are written and before the
rename — leaves the previous checkpoint in place and loadable (vitkit.atomic)."""

from __future__ import annotations

import os
import signal

import pytest
import torch

from vitkit.atomic import atomic_write
from vitkit.training.atomic import AtomicCheckpointIO
from vitkit.weights.io import load_pickle_safely


def test_a_kill_between_write_and_rename_leaves_the_previous_checkpoint(tmp_path):
    if not hasattr(os, "fork"):
        pytest.skip("needs os.fork")
    path = tmp_path / "checkpoints" / "last.ckpt"
    io = AtomicCheckpointIO()
    io.save_checkpoint({"global_step": 12, "state_dict": {"w": torch.ones(3)}}, path)
    pid = os.fork()
    if pid == 0:  # the child: write the next checkpoint and die where a kill hurts most
        def die(*args):
            os.kill(os.getpid(), signal.SIGKILL)

        os.replace = die
        io.save_checkpoint({"global_step": 16, "state_dict": {"w": torch.zeros(3)}}, path)
        os._exit(0)  # not reached
    _, status = os.waitpid(pid, 0)
    assert os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGKILL
    temporaries = list(path.parent.glob(".last.ckpt.tmp-*"))
    assert temporaries and temporaries[0].stat().st_size > 0  # the new bytes were written, not renamed
    previous = load_pickle_safely(path)
    assert previous["global_step"] == 12 and torch.equal(previous["state_dict"]["w"], torch.ones(3))


def test_a_failed_write_removes_its_temporary_and_keeps_the_file(tmp_path):
    path = tmp_path / "out.json"
    atomic_write(path, lambda f: f.write(b"old"))

    def fail(f):
        f.write(b"half")
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        atomic_write(path, fail)
    assert path.read_bytes() == b"old" and not list(tmp_path.glob(".out.json.tmp-*"))
