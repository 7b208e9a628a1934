"""Training order that a killed run continues exactly, on one process or many.

Every random choice the training data makes is a function of ``(seed, epoch, sample index)``, never of how far a
generator has run:

- the order: epoch ``e`` visits the split in the permutation drawn from ``numpy.random.default_rng([seed, e])``;
- the shards: process ``r`` of ``W`` takes positions ``r, r + W, r + 2W, …`` of that permutation, padded at the end
  with its first positions to a multiple of ``W`` (as ``torch.utils.data.DistributedSampler`` pads), so with a
  per-process batch ``B`` step ``i`` of ``W`` processes trains on exactly the ``W·B`` samples that step ``i`` of one
  process with batch ``W·B`` does;
- the augmentation: the sampler yields ``SampleKey(index, epoch)`` and the dataset reseeds the transform of each
  sample from ``(seed, epoch, index)`` (``vitkit.data.formats.FormattedDataset``), so a sample's crop or flip does
  not depend on the worker that loads it, the number of processes, or a restart.

``ResumableLoader`` is a ``DataLoader`` that counts the batches it has handed out this epoch; its ``state_dict`` is
that position, and after ``load_state_dict`` the sampler starts the epoch after the batches already trained on,
without reading them. The datamodule saves the position with its own state in every checkpoint and restores it into
the next training loader it builds (``VisionDataModule.state_dict``). Lightning would do the same for any "stateful"
loader, but it restores loader states only when it builds the loader after loading the checkpoint's loop states;
a task whose ``configure_optimizers`` asks for ``trainer.estimated_stepping_batches`` has the loader built before
that (Lightning 2.6), and the saved position would be silently ignored. Everything else random in a run (dropout,
mixup) lives in the global generators, which ``vitkit.training.rng_state`` saves and restores.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from typing import Any, NamedTuple

import numpy as np
from torch.utils.data import DataLoader, DistributedSampler, Sampler

from vitkit.data.errors import DataError

log = logging.getLogger(__name__)


class SampleKey(NamedTuple):
    """What the training sampler yields: the sample's index in the split and the epoch it is drawn for."""

    index: int
    epoch: int


class ResumableSampler(DistributedSampler):
    """Seeded order of ``num_samples`` indices for one process of ``num_replicas``, as ``SampleKey``s.

    Lightning calls ``set_epoch`` before every epoch; iterating again without it moves on to the next epoch (so a
    loader used outside Lightning reshuffles each time). It is a ``DistributedSampler`` so that Lightning does not
    replace it with its own under a distributed strategy: it shards already.
    """

    def __init__(self, num_samples: int, *, seed: int, num_replicas: int = 1, rank: int = 0) -> None:
        super().__init__(range(num_samples), num_replicas=num_replicas, rank=rank, shuffle=True, seed=seed)
        self._skip = 0  # positions of this process's shard to pass over in the next iteration (a resumed epoch)

    def set_epoch(self, epoch: int) -> None:
        if epoch != self.epoch:
            self._skip = 0  # a restored position belongs to the epoch it was saved in
        self.epoch = epoch

    def skip_next(self, positions: int) -> None:
        """Start the next iteration ``positions`` samples into this process's shard."""
        self._skip = positions

    def shard(self, epoch: int) -> np.ndarray:
        """This process's indices for ``epoch``, in visiting order (``len == self.num_samples``)."""
        order = np.random.default_rng([self.seed, epoch]).permutation(len(self.dataset))
        padded = np.resize(order, self.total_size)  # repeats the first positions to a multiple of num_replicas
        return padded[self.rank:self.total_size:self.num_replicas]

    def __iter__(self) -> Iterator[SampleKey]:
        epoch, skip = self.epoch, self._skip
        self.epoch, self._skip = epoch + 1, 0
        for index in self.shard(epoch)[skip:].tolist():
            yield SampleKey(index, epoch)


class ResumableLoader(DataLoader):
    """A training ``DataLoader`` over a ``ResumableSampler`` whose position Lightning saves and restores.

    ``state_dict()`` is ``{"epoch", "batches"}`` (batches handed out in that epoch) plus what the position means
    (batch size, process count, seed). Restoring it with another batch size or process count cannot continue the
    same order; the loader then says so and skips the same number of batches of the new order.

    ``annotate(batch, epoch, batch_index)``, when given, is applied to each batch in the main process (with the
    batch's index within the epoch, resumed epochs included), e.g. to tag it with its multi-scale size
    (``vitkit.data.multiscale.BatchScales``).
    """

    def __init__(self, dataset: Any, *, sampler: Sampler, annotate: Callable[[Any, int, int], Any] | None = None,
                 **kwargs: Any) -> None:
        super().__init__(dataset, sampler=sampler, **kwargs)
        self.annotate = annotate
        # Lightning's overfit_batches rebuilds the loader around a SequentialSampler: the same first batches every
        # epoch, a plain DataLoader with no position to save
        self.resumable = isinstance(sampler, ResumableSampler)
        self._epoch, self._batches = getattr(sampler, "epoch", 0), 0

    def __iter__(self) -> Iterator[Any]:
        if not self.resumable:
            yield from super().__iter__()
            return
        # a generator: nothing (not even the sampler) runs before the first batch is asked for, by which time
        # Lightning has set the epoch and restored the position
        self._epoch = self.sampler.epoch
        self._batches = self.sampler._skip // self.batch_size
        for batch in super().__iter__():
            self._batches += 1
            yield batch if self.annotate is None else self.annotate(batch, self._epoch, self._batches - 1)

    def state_dict(self) -> dict[str, Any]:
        if not self.resumable:
            return {}
        s = self.sampler
        epoch, batches = (self._epoch + 1, 0) if self._batches >= len(self) else (self._epoch, self._batches)
        return {"epoch": epoch, "batches": batches, "batch_size": self.batch_size, "num_replicas": s.num_replicas,
                "seed": s.seed}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if not self.resumable or not state:
            return
        s = self.sampler
        saved = (state.get("batch_size"), state.get("num_replicas"), state.get("seed"))
        if saved != (self.batch_size, s.num_replicas, s.seed):
            log.warning("the checkpoint's data position was saved with batch size %s on %s processes, seed %s; this "
                        "run has batch size %s on %s processes, seed %s: the resumed epoch cannot continue the same "
                        "order, it skips %d batches of this run's order instead", *saved, self.batch_size,
                        s.num_replicas, s.seed, state["batches"])
        s.set_epoch(int(state["epoch"]))
        s.skip_next(int(state["batches"]) * self.batch_size)
        self._epoch, self._batches = int(state["epoch"]), int(state["batches"])


def per_device_batch_size(global_batch_size: int, world_size: int, accumulate: int = 1) -> int:
    """``global_batch_size / (world_size · accumulate)``; ``DataError`` when that is not a positive integer."""
    per_device, rest = divmod(global_batch_size, world_size * accumulate)
    if rest or per_device < 1:
        raise DataError(f"global_batch_size={global_batch_size} cannot be shared out evenly over {world_size} "
                        f"devices × {accumulate} accumulated batches", f"use a multiple of {world_size * accumulate} "
                        f"(or set data.batch_size, the per-device batch, instead)")
    return per_device
