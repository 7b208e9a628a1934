"""VisionDataModule: the one LightningDataModule every vitkit task trains through.

Batches for ``task="classification"`` are dicts:

- ``"image"``: ``float32 (B, C, H, W)``, normalised with the dataset's per-channel mean/std, ``H = W = image_size``;
- ``"label"``: ``int64 (B,)``, an index into ``class_names``.

Batches for ``task="generation"`` (Image Transformer; ``vitkit.data.formats.GenerationFormat``) hold ``"image"`` as
``uint8 (B, C, H, W)``, the raw 8-bit intensities (digits scaled from 0..16 to 0..255), neither normalised nor
augmented, only resized; and ``"label"`` as above when the dataset has labels (class-conditional models).

Batches for ``task="detection"`` (COCO-format sets: ``coco``, ``digits_detection``; ``vitkit.data.formats.
DetectionFormat``) are ``{"image": float32 (B, 3, H, W) normalised and padded, "pixel_mask": bool (B, H, W) True on
real pixels, "targets": [{"boxes": (n, 4) normalised cxcywh, "labels": (n,), "image_id", "orig_size", "size"}]}``;
``image_size`` is then the shorter side at evaluation. Label ``i`` is category id ``category_ids[i]`` of the
annotation file; ``coco_ground_truth(split)`` gives the file itself for COCO evaluation.

``num_classes``, ``class_names``, ``in_chans``, ``image_size`` (and ``category_ids``) are known right after
construction (the CLI links them into the task before anything is loaded); they are also saved in checkpoints
(``state_dict``), and a checkpoint whose classes differ from the data's is refused.

Pipeline: a dataset from the registry (``vitkit.data.datasets``: name → describe/build) gives train/val/test splits
of raw samples; the task format (``vitkit.data.formats``) builds the transforms from the augmentation preset
(``vitkit.data.transforms``), turns each sample into tensors, and collates batches. New datasets and new tasks
plug in through those two registries without changes here beyond the ``task`` choices.
"""

from __future__ import annotations

import dataclasses
import functools
import logging
import os
import random
from typing import Any, Literal

import lightning as L
import numpy as np
import torch
from torch.utils.data import DataLoader, Subset, get_worker_info

from vitkit.data.datasets import DataOptions, data_root, get_dataset, sample_path
from vitkit.data.errors import DataError
from vitkit.data.formats import FormattedDataset, get_task_format
from vitkit.data.multiscale import BatchScales, check_sizes, rescale_batch
from vitkit.data.preprocessing import Preprocessing
from vitkit.data.sampling import ResumableLoader, ResumableSampler, per_device_batch_size
from vitkit.data.transforms import check_recipe_augment, resolve_augment

log = logging.getLogger(__name__)
FALLBACK_IMAGE_SIZE = 224  # image folders of mixed sizes with no size given by the user or the model


class VisionDataModule(L.LightningDataModule):
    """Train / val / test / predict loaders for one dataset and one task; predict uses the test split."""

    def __init__(
        self,
        dataset: str = "digits",
        root: str | None = None,
        task: Literal["classification", "generation", "detection"] = "classification",
        image_size: int | None = None,
        batch_size: int = 64,
        eval_batch_size: int | None = None,
        num_workers: int | None = None,
        augment: Literal["auto", "none", "cifar", "imagenet", "digits", "detr", "detr_noflip"] = "auto",
        val_split: float = 0.1,
        seed: int = 0,
        download: bool = False,
        pin_memory: bool | None = None,
        persistent_workers: bool = True,
        fake_samples: int = 512,
        fake_classes: int = 10,
        fake_channels: int = 3,
        rand_augment: str | None = None,
        random_erasing: float = 0.0,
        train_ann: str | None = None,
        val_ann: str | None = None,
        train_images: str | None = None,
        val_images: str | None = None,
        global_batch_size: int | None = None,
        skip_bad_files: bool = False,
        decode: Literal["cpu", "gpu"] = "cpu",
        multiscale_sizes: list[int] | None = None,
        no_aug_epochs: int = 0,
        cache_dir: str | None = None,
        normalise: Literal["auto", "device", "workers"] = "auto",
    ) -> None:
        """
        Args:
            dataset: registered dataset name: digits (scikit-learn's 8×8 digits, no download), cifar10, cifar100
                (torchvision's files under root), imagefolder (root/train/<class>/*, root/val/<class>/* or
                root/test/<class>/*), streaming (an image folder, or for task=detection a COCO set, written as shards
                by ``vitkit prepare``), fake
                (random images, for tests and benchmarks); for task=detection: coco
                (COCO-format instances JSON + images under root), digits_detection (digits on 96×96 canvases,
                generated in COCO format under root, default data/digits_detection).
            root: dataset folder (cifar: where torchvision's files are or go; imagefolder: the folder holding train/;
                streaming: the folder ``vitkit prepare --to`` wrote, local or a URL litdata reads (s3://bucket/prefix);
                coco: the folder the annotation and image paths are relative to).
            task: what the batches are for; selects how samples become tensors: classification (normalised,
                augmented float images), generation (uint8 images, resized only) or detection.
            image_size: side of the square images in batches; default: the dataset's native size (digits 8,
                CIFAR 32, fake 32; an image folder whose images share one square size, e.g. CIFAR JPEGs: that
                size), else the model's own (the CLI adopts it), else 224. Detection: the shorter side at
                evaluation (training scales are fractions of it); default 800 for coco (the paper's), 96 for
                digits_detection.
            batch_size: training batch size per device (process); see global_batch_size.
            eval_batch_size: validation/test/predict batch size; default batch_size.
            num_workers: DataLoader worker processes; default min(4, CPU count), or 0 for digits and fake.
            augment: training augmentation preset: auto (the dataset's own), none, cifar (pad + random crop + flip),
                imagenet (random-resized crop + flip), digits (small shift/scale/rotation, no flip); detection:
                detr (the paper's flip + multi-scale resize + random crop), detr_noflip (the same without flip).
            val_split: fraction of the training data held out (stratified, seeded) when there is no val folder.
            seed: seeds the validation hold-out, the shuffling and the augmentation.
            download: fetch cifar10/cifar100 into root when missing (needs internet).
            pin_memory: pin batches in page-locked memory; default: when CUDA is available.
            persistent_workers: keep worker processes alive between epochs (when num_workers > 0).
            fake_samples: fake dataset: number of training + validation images.
            fake_classes: fake dataset: number of classes.
            fake_channels: fake dataset: image channels.
            rand_augment: training recipe: timm RandAugment string after the preset's geometry, e.g.
                ``rand-m9-mstd0.5-inc1`` (DeiT's); default off. Classification only.
            random_erasing: training recipe: probability of erasing a random rectangle (random pixels), last;
                timm/DeiT use 0.25; default 0 (off). Classification only.
            train_ann: COCO-format sets: the training annotation file, relative to root unless absolute;
                default annotations/instances_train2017.json (coco).
            val_ann: the validation annotation file; default annotations/instances_val2017.json (coco). When the
                default file does not exist, a val_split share of the training images is held out.
            train_images: folder the training file's "file_name"s are relative to; default train2017 (coco).
            val_images: the same for validation; default val2017 (coco).
            global_batch_size: images per optimiser step over all devices; when set, it replaces batch_size, which
                becomes global_batch_size / (devices × nodes × accumulate_grad_batches) (an error if that does not
                divide). The same global batch trains on the same images per step on any number of devices.
            skip_bad_files: replace samples whose file cannot be read (truncated, not an image, over PIL's
                decompression-bomb limit, ...) with the next readable one, and report them with their count at the
                end of the run, instead of stopping with the file's name.
            decode: where classification JPEGs are decoded: cpu (the workers, at a reduced DCT scale) or gpu (the
                workers plan each crop, the device decodes the batch with nvJPEG; ``vitkit.data.device_decode``).
            multiscale_sizes: detection: train each batch at a shorter side drawn from this list (RT-DETR: 480 to
                800 step 32 for image_size 640), seeded per optimiser step (``vitkit.data.multiscale``); RT-DETR
                needs multiples of 32. Default: off.
            no_aug_epochs: train the last N epochs of ``trainer.max_epochs`` with the evaluation transform and no
                multi-scale (RT-DETR's last epochs without augmentation); 0: off.
            cache_dir: streaming from a URL root (``s3://bucket/prefix``): the local folder litdata downloads the
                chunks into; default litdata's own (``$LITDATA_CACHE_DIR``, else ``~/.lightning/chunks``).
            normalise: where classification batches are normalised: device (they leave the loaders as uint8 and
                ``on_after_batch_transfer`` normalises them where the model runs: a quarter of the bytes through the
                workers' shared memory and the host-to-device copy, as timm's prefetcher), workers (float batches
                from the loaders), or auto: device when a Lightning Trainer drives this module (it calls
                ``on_after_batch_transfer``), workers when you iterate the loaders yourself.
        """
        super().__init__()
        self.save_hyperparameters()
        _check_positive(image_size=image_size, batch_size=batch_size, eval_batch_size=eval_batch_size,
                        global_batch_size=global_batch_size)
        if not 0.0 < val_split < 1.0:
            raise DataError(f"val_split={val_split} must lie strictly between 0 and 1", "e.g. 0.1 holds out 10%")
        if num_workers is not None and num_workers < 0:
            raise DataError(f"num_workers={num_workers} must be 0 (load in the main process) or more",
                            "use 0 or a positive count")
        self.dataset_name = dataset
        self.spec = get_dataset(dataset)
        format_cls = get_task_format(task)
        missing = format_cls.requires - self.spec.sample_keys
        if missing:
            raise DataError(f"dataset {dataset!r} cannot serve task {task!r}: its samples lack {sorted(missing)}",
                            "pick a dataset of that task (detection: coco, digits_detection)")
        given = {f.name: self.hparams[f.name] for f in dataclasses.fields(DataOptions) if f.name != "root"}
        self.options = DataOptions(root=data_root(root, dataset), **given)
        self.info = self.spec.describe(self.options)
        self.task_format = format_cls(self.info) if decode == "cpu" else _device_decode_format(self.info, task,
                                                                                             rand_augment,
                                                                                             random_erasing)
        self.augment = resolve_augment(augment, self.info.augment, format_cls.presets)
        check_recipe_augment(rand_augment, random_erasing)
        if (rand_augment or random_erasing) and task != "classification":
            raise DataError(f"rand_augment / random_erasing apply to classification, not to task={task!r}",
                            "remove them from the data options")
        self.recipe_augment = {"rand_augment": rand_augment, "random_erasing": random_erasing}
        self.multiscale_sizes = check_sizes(multiscale_sizes, task)
        if isinstance(no_aug_epochs, bool) or not isinstance(no_aug_epochs, int) or no_aug_epochs < 0:
            raise DataError(f"no_aug_epochs={no_aug_epochs!r} must be a whole number >= 0", "use 0 to keep augmenting")
        self.no_aug_epochs = no_aug_epochs
        if normalise not in ("auto", "device", "workers"):
            raise DataError(f"normalise={normalise!r}", "use auto, device or workers")
        self.normalise = normalise
        self.batch_size, self.eval_batch_size = batch_size, eval_batch_size
        self.global_batch_size, self.skip_bad_files = global_batch_size, skip_bad_files
        default_workers = min(4, os.cpu_count() or 1) if self.info.use_workers else 0
        self.num_workers = default_workers if num_workers is None else num_workers
        self.pin_memory = torch.cuda.is_available() if pin_memory is None else pin_memory
        self.persistent_workers = persistent_workers
        self.seed = seed
        self._adopted_size: int | None = None
        self._datasets: dict[str, FormattedDataset] = {}
        self._train_loader: ResumableLoader | None = None
        self._resume_position: dict[str, Any] | None = None  # from a checkpoint, for the next training loader

    # -- what the task needs to know before any data is loaded -----------------------------------------------------
    @property
    def class_names(self) -> list[str]:
        return list(self.info.class_names)

    @property
    def num_classes(self) -> int:
        return len(self.info.class_names)

    @property
    def in_chans(self) -> int:
        return self.info.in_chans

    @property
    def image_size(self) -> int | None:
        """The side of the images in batches: the one asked for, else the dataset's (its native size, or the size
        all of an image folder's images share); ``None`` when neither says — the model's own size is then adopted
        (``adopt_image_size``), else 224 at set-up."""
        return self.options.image_size or self.info.default_image_size or self._adopted_size

    def adopt_image_size(self, size: int | None) -> None:
        """Use ``size`` (the model's design size) when neither the user nor the dataset gives one."""
        if self.image_size is None and size is not None:
            self._adopted_size = int(size)
            log.info("%s: images of mixed sizes and no --data.image_size: using the model's %d", self.dataset_name,
                     size)

    @property
    def preprocessing(self) -> Preprocessing:
        """What evaluation, prediction and export do to an image (``vitkit.data.preprocessing``)."""
        return self.task_format.preprocessing(self.augment, self._working_size())

    def _working_size(self) -> int:
        if self.image_size is None:
            log.info("%s: images of mixed sizes and no --data.image_size: using %d", self.dataset_name,
                     FALLBACK_IMAGE_SIZE)
            self._adopted_size = FALLBACK_IMAGE_SIZE
        return self.image_size

    @property
    def category_ids(self) -> list[int]:
        """The dataset's id of each class (label ``i`` ↔ ``category_ids[i]``); ``0..K-1`` for classification sets."""
        ids = self.info.category_ids
        return list(ids) if ids is not None else list(range(self.num_classes))

    @property
    def mean(self) -> tuple[float, ...]:
        return self.info.mean

    @property
    def std(self) -> tuple[float, ...]:
        return self.info.std

    # -- Lightning hooks ---------------------------------------------------------------------------------------------
    def prepare_data(self) -> None:
        if self.spec.prepare is not None:
            self.spec.prepare(self.options)

    def setup(self, stage: str | None = None) -> None:
        if self._datasets:
            return
        if self.image_size is None and self.trainer is not None:  # the data does not say: the model's size
            self.adopt_image_size(getattr(self.trainer.lightning_module, "input_size", None))
        splits = self.spec.build(self.options, self.info)
        train_tf, eval_tf = self.task_format.transforms(self.augment, self._working_size(), self.seed,
                                                        **self.recipe_augment)
        for name, split, transform in (("train", splits.train, train_tf), ("val", splits.val, eval_tf),
                                       ("test", splits.test, eval_tf)):
            if len(split) == 0:
                raise DataError(f"the {name} split of {self.dataset_name!r} is empty",
                                f"add images (or a {name}/ folder) or raise --data.val_split")
            self._datasets[name] = FormattedDataset(split, transform, self.task_format, seed=self.seed,
                                                    skip_bad_files=self.skip_bad_files, plain_transform=eval_tf)
        log.info("%s: %d train / %d val / %d test samples, %d classes, image size %d, augment=%s", self.dataset_name,
                 len(splits.train), len(splits.val), len(splits.test), self.num_classes, self.image_size,
                 self.augment)

    def on_before_batch_transfer(self, batch: Any, dataloader_idx: int) -> Any:
        """``--data.decode gpu``: the batch's JPEGs decoded on the device it is about to move to."""
        if isinstance(batch, dict) and "jpeg" in batch:
            return self.task_format.decode_batch(batch, self.trainer.strategy.root_device)
        return batch

    def on_after_batch_transfer(self, batch: Any, dataloader_idx: int) -> Any:
        """On the device: what the task format leaves to it (classification: the 8-bit batch normalised, ``vitkit.
        data.formats.ClassificationFormat``); multi-scale training: a batch tagged with its size is resized
        (``vitkit.data.multiscale``)."""
        if isinstance(batch, dict) and "image" in batch:
            done = self.task_format.on_device(batch)
            plugin = getattr(self.trainer, "precision_plugin", None)
            if done is not batch and plugin is not None:  # as the precision plugin did to the other inputs
                done = plugin.convert_input(done)  # (bf16-true: bf16 pixels, 64-true: double)
            batch = done
        if isinstance(batch, dict) and "scale" in batch:
            batch = dict(batch)
            return rescale_batch(batch, batch.pop("scale"), self.image_size)
        return batch

    def plain_from_epoch(self) -> int | None:
        """The first of the ``no_aug_epochs`` last epochs of the attached trainer's ``max_epochs`` (None: off)."""
        trainer = self.trainer
        if not self.no_aug_epochs or trainer is None:
            return None
        if trainer.max_epochs is None or trainer.max_epochs < 0:
            raise DataError(f"no_aug_epochs={self.no_aug_epochs} counts back from trainer.max_epochs, which is "
                            f"{trainer.max_epochs}", "set --trainer.max_epochs")
        return max(0, trainer.max_epochs - self.no_aug_epochs)

    def train_dataloader(self) -> DataLoader:
        return self._loader("train", train=True)

    def val_dataloader(self) -> DataLoader:
        return self._loader("val", train=False)

    def test_dataloader(self) -> DataLoader:
        return self._loader("test", train=False)

    def predict_dataloader(self) -> DataLoader:
        return self._loader("test", train=False)

    def state_dict(self) -> dict[str, Any]:
        state = {"dataset": self.dataset_name, "class_names": self.class_names, "category_ids": self.category_ids,
                 "in_chans": self.in_chans, "image_size": self.image_size, "mean": list(self.mean),
                 "std": list(self.std)}
        if self._train_loader is not None:  # where training is in the data (vitkit.data.sampling)
            state["train_position"] = self._train_loader.state_dict()
        return state

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self._resume_position = state_dict.get("train_position")
        saved = list(state_dict.get("class_names", self.class_names))
        saved_ids = list(state_dict.get("category_ids", self.category_ids))
        if saved == self.class_names and saved_ids != self.category_ids:
            raise DataError(f"the checkpoint's classes have category ids {saved_ids[:20]} but the annotation file of "
                            f"{self.dataset_name!r} gives them {self.category_ids[:20]}: its outputs would be "
                            f"reported under the wrong ids", "use the annotation file the model was trained with")
        if saved != self.class_names:
            only_saved = sorted(set(saved) - set(self.class_names))
            only_here = sorted(set(self.class_names) - set(saved))
            raise DataError(f"the checkpoint was trained on classes {saved[:20]}{' ...' if len(saved) > 20 else ''} "
                            f"but {self.dataset_name!r} has {self.class_names[:20]}"
                            f"{' ...' if self.num_classes > 20 else ''} (only in checkpoint: {only_saved or 'none'}; "
                            f"only in data: {only_here or 'none'}; else the order differs)",
                            "point --data.root at data with the checkpoint's classes")

    def coco_ground_truth(self, split: Literal["train", "val", "test"]):
        """The split's annotation file as a ``pycocotools.coco.COCO`` (detection sets; the detection task evaluates
        against it, crowd regions and original areas included)."""
        source = self.dataset(split).samples
        while isinstance(source, Subset):
            source = source.dataset
        if not hasattr(source, "ground_truth"):
            raise DataError(f"dataset {self.dataset_name!r} has no COCO annotation file to evaluate against",
                            "evaluate on a COCO-format dataset (coco, digits_detection)")
        return source.ground_truth()

    # -- loaders ----------------------------------------------------------------------------------------------------
    def dataset(self, split: Literal["train", "val", "test"]) -> FormattedDataset:
        """The formatted split (sets up on first use, so the module also works outside a Trainer)."""
        if not self._datasets:
            self.setup()
        return self._datasets[split]

    def train_batch_size(self) -> int:
        """Training images per batch on this device: ``global_batch_size`` shared out over the devices and the
        gradient-accumulation steps of the attached trainer, else ``batch_size``."""
        if self.global_batch_size is None:
            return self.batch_size
        trainer = self.trainer
        world, accumulate = (trainer.world_size, trainer.accumulate_grad_batches) if trainer else (1, 1)
        return per_device_batch_size(self.global_batch_size, world, accumulate)

    def _normalise_on_device(self) -> bool:
        return self.normalise == "device" or (self.normalise == "auto" and self.trainer is not None)

    def _loader(self, split: Literal["train", "val", "test"], *, train: bool) -> DataLoader:
        data = self.dataset(split)
        trainer = self.trainer
        rank = trainer.global_rank if trainer else 0
        common = dict(num_workers=self.num_workers, pin_memory=self.pin_memory,
                      persistent_workers=self.persistent_workers and self.num_workers > 0,
                      collate_fn=functools.partial(self.task_format.collate, on_device=self._normalise_on_device()),
                      worker_init_fn=functools.partial(_seed_worker, rank=rank),
                      # the loader's own generator seeds its workers: loaders never draw from torch's global one
                      generator=torch.Generator().manual_seed(self.seed))
        if not train:
            return DataLoader(data, batch_size=self.eval_batch_size or self.train_batch_size(), shuffle=False, **common)
        batch_size = self.train_batch_size()
        sampler = ResumableSampler(len(data), seed=self.seed, num_replicas=trainer.world_size if trainer else 1,
                                   rank=rank)
        # the epoch of every sample key decides the transform, in the workers too (they are started after this)
        data.plain_from_epoch = self.plain_from_epoch()
        scales = BatchScales(self.multiscale_sizes, seed=self.seed, plain_from_epoch=data.plain_from_epoch,
                             accumulate=trainer.accumulate_grad_batches if trainer else 1)
        # equal-sized steps, unless that would leave none
        loader = ResumableLoader(data, sampler=sampler, batch_size=batch_size, drop_last=len(sampler) > batch_size,
                                 annotate=scales if self.multiscale_sizes else None, **common)
        if self._resume_position is not None:
            loader.load_state_dict(self._resume_position)
            self._resume_position = None
        self._train_loader = loader
        return loader

    def teardown(self, stage: str) -> None:
        for split, data in self._datasets.items():
            bad = data.bad_samples()
            if bad:
                names = [sample_path(data.samples, i) for i in bad]
                log.warning("skip_bad_files: %d unreadable files skipped in the %s split (this process): %s%s",
                            len(bad), split, ", ".join(names[:10]), " ..." if len(bad) > 10 else "")


def _seed_worker(worker_id: int, rank: int = 0) -> None:
    """Each worker gets its own seed (from the loader's, drawn from its generator, and the process rank):
    albumentations' generator is part of the transform, so without this every forked worker, and every DDP rank,
    would replay the same augmentations."""
    import cv2

    cv2.setNumThreads(0)  # one thread per worker: the workers are the parallelism; cv2's own pool oversubscribes
    info = get_worker_info()
    seed = int(np.random.SeedSequence([info.seed, rank]).generate_state(1)[0])
    np.random.seed(seed)
    random.seed(seed)
    if hasattr(info.dataset, "reseed"):
        info.dataset.reseed(seed)


def _device_decode_format(info, task: str, rand_augment: str | None, random_erasing: float):
    from vitkit.data.device_decode import DeviceDecodeFormat

    if decode_refused := (task != "classification" and f"task={task!r}") or \
            ((rand_augment or random_erasing) and "rand_augment / random_erasing"):
        raise DataError(f"--data.decode gpu cannot serve {decode_refused}", "use --data.decode cpu (the default)")
    if not torch.cuda.is_available():
        raise DataError("--data.decode gpu needs a CUDA GPU, and none is visible", "use --data.decode cpu")
    return DeviceDecodeFormat(info)


def _check_positive(**values: int | None) -> None:
    for key, value in values.items():
        if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
            raise DataError(f"{key}={value!r} must be a positive integer", f"give --data.{key} a whole number above 0")
