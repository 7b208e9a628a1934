"""One error convention: every user mistake — a config value of any family, data, a checkpoint, a CLI argument of any
sub-command, under fit/validate/test/predict and fast_dev_run alike — reaches the user as ONE line
``vitkit: error: <what> — <how to fix>`` and exit status 2: no traceback, no argument-parser dump."""

from __future__ import annotations

from pathlib import Path

import pytest

from vitkit.cli import main

ROOT = Path(__file__).parents[1]
VIT, CVT, ITF, DETR = (str(ROOT / f"configs/{c}/digits.yaml") for c in ("vit", "cvt", "image_transformer", "detr"))
MISSING = "/no/such/file.ckpt"


def assert_one_line_error(code: int, err: str, *expected: str) -> str:
    assert code == 2, err[-2000:]
    errors = [line for line in err.splitlines() if line.startswith("vitkit: error: ")]
    assert len(errors) == 1, err[-2000:]
    assert " — " in errors[0], errors[0]
    assert "Traceback" not in err and "usage:" not in err and "Given value" not in err, err[-2000:]
    for part in expected:
        assert part in errors[0], errors[0]
    return errors[0]


def _lightning(args: list[str], tmp_path: Path, capfd) -> tuple[int, str]:
    code = main([*args, f"--trainer.default_root_dir={tmp_path}", "--trainer.enable_progress_bar", "false"])
    return code, capfd.readouterr().err


@pytest.mark.parametrize("subcommand", ["fit", "validate", "test", "predict"])
@pytest.mark.parametrize("fast_dev_run", [False, True])
@pytest.mark.parametrize("config, kwargs, expected", [
    (VIT, '{"dim": 100, "num_heads": 3}', "dim=100 must be divisible by num_heads=3"),
    (CVT, '{"drop_path_scope": "everywhere"}', "drop_path_scope must be 'last_stage' or 'all'"),
    (ITF, '{"block_size": 7}', "block_size=7 must divide the sequence length"),
    (VIT, '{"dimm": 64}', "unknown config field(s) ['dimm']"),
], ids=["vit", "cvt", "image_transformer", "unknown_field"])
def test_bad_model_config_of_every_family_is_one_line(subcommand, fast_dev_run, config, kwargs, expected, tmp_path,
                                                      capfd):
    args = [subcommand, "-c", config, "--model.init_args.model_kwargs", kwargs]
    if fast_dev_run:
        args += ["--trainer.fast_dev_run", "true"]
    assert_one_line_error(*_lightning(args, tmp_path, capfd), expected)


def test_bad_detr_config_is_one_line(tmp_path, capfd, digits_detection_root):
    args = ["fit", "-c", DETR, "--data.root", str(digits_detection_root), "--trainer.fast_dev_run", "true",
            "--model.init_args.model_kwargs", '{"backbone": "no_such_cnn"}']
    assert_one_line_error(*_lightning(args, tmp_path, capfd), "backbone 'no_such_cnn' is not a timm model")


@pytest.mark.parametrize("args, expected", [
    (["fit", "-c", VIT, "--trainer.max_epochz", "3"], "unrecognised argument --trainer.max_epochz"),
    (["fit", "-c", VIT, "--model.init_args.lr", "fast"], "--model.init_args.lr: expected a float, got 'fast'"),
    (["fit", "-c", VIT, "--data.augment", "mixup"], "--data.augment: expected one of"),
    (["fit", "-c", str(ROOT / "configs/vit/nope.yaml")], "--config: File does not exist"),
    (["fit", "-c", VIT, "--model.class_path", "vitkit.tasks.NoSuchTask"], "has no attribute 'NoSuchTask'"),
    (["fit", "-c", VIT, "--trainer.logger.save_dir", "x"], "the class is not given"),
    (["fit", "-c", VIT, "--data.dataset", "imagefolder", "--data.root", "/no/such/folder"], "does not exist"),
    (["fit", "-c", VIT, "--data.dataset", "mnist"], "unknown dataset 'mnist'"),
    (["fit", "-c", VIT, "--data.val_split", "1.5"], "val_split=1.5 must lie strictly between 0 and 1"),
    (["fit", "-c", VIT, "--model.init_args.model", "vit_tiny_patch16_244"], "unknown model 'vit_tiny_patch16_244'"),
    (["fit", "-c", VIT, "--model.init_args.nonfinite_loss", "ignore"], "--model.init_args.nonfinite_loss"),
    (["fit", "-c", VIT, "--model.init_args.layer_decay", "2.0", "--trainer.fast_dev_run", "true"],
     "layer_decay=2.0 must lie in (0, 1]"),
    (["validate", "-c", VIT, "--ckpt_path", MISSING], f"checkpoint {MISSING} does not exist"),
    (["test", "-c", VIT, "--ckpt_path", MISSING, "--trainer.fast_dev_run", "true"], "does not exist"),
    (["predict", "-c", VIT, "--ckpt_path", MISSING], "does not exist"),
], ids=lambda v: v if isinstance(v, str) else None)
def test_lightning_subcommand_mistakes_are_one_line(args, expected, tmp_path, capfd):
    assert_one_line_error(*_lightning(args, tmp_path, capfd), expected)


def test_a_file_that_is_not_a_checkpoint_is_one_line(tmp_path, capfd):
    bad = tmp_path / "bad.ckpt"
    bad.write_text("not a checkpoint")
    for command in (["test", "-c", VIT, "--ckpt_path", str(bad)],
                    ["export", "--ckpt", str(bad), "--out", "x.safetensors"],
                    ["attention", "--ckpt", str(bad)], ["sample", "--ckpt", str(bad)],
                    ["detect", "--ckpt", str(bad), str(bad), "--out", str(tmp_path / "o")]):
        extra = [f"--trainer.default_root_dir={tmp_path}"] if command[0] == "test" else []
        assert_one_line_error(main(command + extra), capfd.readouterr().err, "not a PyTorch checkpoint")


@pytest.mark.parametrize("args, expected", [
    (["frobnicate"], "unknown command 'frobnicate'"),
    (["models", "--colour"], "vitkit models: unrecognized arguments: --colour"),
    (["attention", "--ckpt", MISSING], f"checkpoint {MISSING} does not exist"),
    (["attention"], "the following arguments are required: --ckpt"),
    (["sample", "--ckpt", MISSING, "--temperature", "0"], "--temperature must be > 0, got 0.0"),
    (["sample", "--ckpt", MISSING, "--num", "-1"], "--num must be positive"),
    (["detect", "--ckpt", MISSING, "x.png"], "the following arguments are required: --out"),
    (["detect", "--ckpt", MISSING, "nope.png", "--out", "o", "--threshold", "2"], "--threshold 2.0"),
    (["detect", "--ckpt", MISSING, "nope.png", "--out", "o"], "image file(s) not found: nope.png"),
    (["bench", "--models", "vit_tset", "--epochs", "1"], "unknown model 'vit_tset'"),
    (["bench", "--models", "vit_test", "--epochs", "0"], "the budget must be a positive number"),
    (["check-data", "--root", "/no/such/set"], "annotation file /no/such/set/annotations/instances_train2017.json"),
    (["check-data", "--dataset", "imagefolder"], "needs a dataset"),
    (["check-data", "-c", VIT], "dataset 'digits' is built into vitkit"),
    (["check-data", "-c", VIT, "--trainer.max_epochs", "3"], "check-data takes -c CONFIG with --data.* flags"),
    (["check-data", "--ann", "a.json"], "--ann needs --images DIR"),
    (["export", "--ckpt", MISSING, "--out", "model.pth"], "name it <something>.safetensors"),
    (["export", "--ckpt", MISSING, "--out", "model.safetensors"], "does not exist"),
], ids=lambda v: v if isinstance(v, str) else None)
def test_tool_subcommand_mistakes_are_one_line(args, expected, tmp_path, capfd, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert_one_line_error(main(args), capfd.readouterr().err, expected)
