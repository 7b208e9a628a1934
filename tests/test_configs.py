"""Every config under configs/ runs one training and one validation batch on CPU.

Configs whose data is not on this machine (CIFAR files, ImageNet, COCO) run on the `fake` dataset, or for detection
on the embedded `digits_detection` set at 64 pixels without their initial checkpoint; configs that ask for GPUs and
several devices run on one CPU process. Fine-tuning configs that start from Hub weights (`checkpoint: hf-hub:...`)
start instead from a checkpoint the test builds locally, of the same family at reduced size (the Hub is never
reached), and must re-initialise the class head only (each family's own keys). Detection configs moved to 64 pixels
have their multi-scale sizes scaled alike. Everything else is the config as written.
"""

import importlib
import json
import re
from pathlib import Path

import pytest

from vitkit.trainer import run_lightning_cli

CONFIGS = sorted(p for p in (Path(__file__).parents[1] / "configs").rglob("*.yaml") if "bench" not in p.parts)
EMBEDDED = {"digits", "digits_detection"}  # datasets that exist on every machine
# Paper-sized models whose one CPU batch takes minutes: checked at reduced depth and width, everything else as written.
SMALLER = ["--model.init_args.model_kwargs", '{"depth": 1, "dim": 64, "num_heads": 2}']
# RT-DETR at 64 pixels has 8·8 + 4·4 + 2·2 = 84 encoder tokens: fewer queries than its 300 are selected from them.
# (rtdetr/coco.yaml runs as RTDETR_STANDIN below, with 20.)
REDUCED = {"image_transformer/cifar10.yaml": SMALLER, "image_transformer/imagenet32.yaml": SMALLER,
           "vit/imagenet_fsdp.yaml": SMALLER}
# Configs starting from Hub weights: the reduced shape of the stand-in checkpoint, the class count of its head (the
# Hub weights' own, so that the run re-initialises the head as the real one does; None: a bare ImageNet backbone,
# timm's, loaded into the backbone alone), and the keys that must be re-initialised (the family's class head;
# everything else loads).
HEAD = ["head.bias", "head.weight"]
RTDETR_STANDIN = {"backbone": "resnet18d", "expansion": 0.5, "encoder_dim": 64, "encoder_heads": 2,
                  "encoder_ffn_dim": 128, "dim": 64, "num_heads": 2, "dec_depth": 2, "dec_ffn_dim": 128,
                  "num_queries": 20}
RTDETR_CLASS_HEADS = sorted(["enc_score_head.weight", "enc_score_head.bias", "decoder.class_heads.0.weight",
                             "decoder.class_heads.0.bias", "decoder.class_heads.1.weight", "decoder.class_heads.1.bias",
                             "denoising_class_embed.weight"])
HUB_STANDINS = {
    "vit/finetune_cifar10.yaml": ({"depth": 1, "dim": 64, "num_heads": 2}, 21843, HEAD),
    "cvt/finetune.yaml": ({"stages": [{"dim": 16, "depth": 1, "num_heads": 1, "patch_size": 7, "patch_stride": 4,
                                       "patch_padding": 2}, {"dim": 32, "depth": 1, "num_heads": 2}]}, 1000, HEAD),
    "rtdetr/finetune.yaml": (RTDETR_STANDIN, 80, RTDETR_CLASS_HEADS),
    "rtdetr/coco.yaml": (RTDETR_STANDIN, None, []),
}


def _hub_standin(config: Path, tmp_path: Path) -> list[str]:
    """Arguments that replace a config's Hub checkpoint by a locally built one of the same preset at reduced size."""
    from safetensors.torch import save_file

    from vitkit import create_model
    from vitkit.weights.hub import known_repos, parse

    text = config.read_text()
    hub_id = re.search(r"checkpoint: (hf-hub:\S+)", text).group(1)
    kwargs, num_classes, _ = HUB_STANDINS[config.relative_to(config.parents[1]).as_posix()]
    preset = re.search(r"^\s+model: (\w+)", text, re.MULTILINE).group(1)
    path = tmp_path / "pretrained.safetensors"
    if num_classes is None:  # the ImageNet backbone that pretrained="backbone" takes for the preset
        import timm
        import torch

        from vitkit.build import pretrained_checkpoint

        with torch.device("meta"):
            assert hub_id == pretrained_checkpoint(preset, create_model(preset), "backbone")
        save_file(timm.create_model(kwargs["backbone"], pretrained=False).state_dict(), str(path))
    else:
        assert parse(hub_id)[0] in known_repos(), f"{hub_id} is not in vitkit.weights.hub's table"
        save_file(create_model(preset, num_classes=num_classes, **kwargs).state_dict(), str(path))
    return ["--model.init_args.model_kwargs", json.dumps(kwargs), "--model.init_args.checkpoint", str(path)]


def _one_batch_args(config: Path, tmp_path: Path, detection_root: Path) -> list[str]:
    text = config.read_text()
    args = ["fit", "-c", str(config), "--trainer.fast_dev_run", "1", "--trainer.accelerator", "cpu",
            "--trainer.devices", "1", "--trainer.strategy", "auto", f"--trainer.default_root_dir={tmp_path}"]
    dataset = re.search(r"^\s+dataset: (\w+)", text, re.MULTILINE).group(1)
    if "task: detection" in text:
        args += ["--data.dataset", "digits_detection", "--data.root", str(detection_root)]
        if dataset not in EMBEDDED:
            args += ["--data.image_size", "64", "--data.batch_size", "2", "--data.num_workers", "0",
                     "--model.init_args.checkpoint", "null"] + _scaled_multiscale(text, 64)
    elif dataset not in EMBEDDED:
        args += ["--data.dataset", "fake", "--data.root", "null", "--data.batch_size", "2", "--data.num_workers", "0"]
    if "checkpoint: hf-hub:" in text:
        args += _hub_standin(config, tmp_path)
    return args + REDUCED.get(config.relative_to(config.parents[1]).as_posix(), [])


def _scaled_multiscale(text: str, size: int) -> list[str]:
    """A detection config's multi-scale sizes scaled as its image size is to ``size`` (multiples of 32, RT-DETR's)."""
    import yaml

    data = yaml.safe_load(text)["data"]
    if not data.get("multiscale_sizes"):
        return []
    scaled = sorted({32 * max(1, round(s * size / data["image_size"] / 32)) for s in data["multiscale_sizes"]})
    return ["--data.multiscale_sizes", json.dumps(scaled)]


def _task_available(config: Path) -> bool:
    module, _, name = re.search(r"class_path: ([\w.]+)", config.read_text()).group(1).rpartition(".")
    return hasattr(importlib.import_module(module), name)


@pytest.mark.parametrize("config", CONFIGS, ids=[str(p.relative_to(p.parents[1])) for p in CONFIGS])
def test_config_runs_one_batch(config, tmp_path, request):
    assert config.read_text().startswith("# vitkit "), "each config starts with the command that runs it"
    if not _task_available(config):  # a config may land before its task class (branches merge in any order)
        pytest.skip(f"{config.name}: its task class is not in this checkout")
    root = request.getfixturevalue("digits_detection_root") if "task: detection" in config.read_text() else None
    cli = run_lightning_cli(_one_batch_args(config, tmp_path, root))
    assert cli.trainer.state.finished
    assert cli.trainer.callback_metrics, "the batch logged no metrics"
    if "checkpoint: hf-hub:" in config.read_text():  # fine-tuning: a new class head, everything else loaded
        _, num_classes, expected = HUB_STANDINS[config.relative_to(config.parents[1]).as_posix()]
        report = cli.model.load_report
        assert sorted(report.reinitialized) == expected
        assert num_classes is not None or any("backbone only" in note for note in report.notes)


def test_strategies_given_as_classes_build():
    """The one-batch runs replace every strategy with 'auto' (one CPU process); a strategy given as a class (FSDP,
    which needs CUDA to run) is built here from the file as written, with its wrapping policy resolved."""
    import yaml
    from jsonargparse import ArgumentParser
    from lightning.pytorch.strategies import FSDPStrategy, Strategy

    from vitkit.layers import Block

    built = {}
    for config in CONFIGS:
        strategy = yaml.safe_load(config.read_text())["trainer"].get("strategy")
        if isinstance(strategy, dict):
            parser = ArgumentParser()
            parser.add_argument("--strategy", type=Strategy)
            built[config.name] = parser.instantiate(parser.parse_object({"strategy": strategy})).strategy
    fsdp = built["imagenet_fsdp.yaml"]
    assert isinstance(fsdp, FSDPStrategy)
    assert fsdp.kwargs["auto_wrap_policy"]._module_classes == {Block}  # one FSDP unit per Transformer block
    assert fsdp._activation_checkpointing_kwargs["auto_wrap_policy"]._module_classes == {Block}
