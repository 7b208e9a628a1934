"""The `vitkit` command: sub-command dispatch, plain error messages, the models table and the attention figure."""

from pathlib import Path

from PIL import Image

from vitkit.cli import main

ROOT = Path(__file__).parents[1]


def test_usage_lists_commands(capsys):
    assert main([]) == 0
    out = capsys.readouterr().out
    assert "fit" in out and "models" in out and "attention" in out
    assert main(["frobnicate"]) == 2


def test_models_table(capsys):
    assert main(["models", "vit_tiny_patch16_224"]) == 0
    out = capsys.readouterr().out
    assert "5.72M" in out and "1.25" in out  # timm's parameter count; torchvision-style GFLOPs


def test_bad_input_is_a_message_not_a_traceback(capsys, tmp_path):
    config = str(ROOT / "configs/vit/digits.yaml")
    assert main(["fit", "-c", config, "--model.init_args.model", "vit_tiny_patch16_244",
                 f"--trainer.default_root_dir={tmp_path}"]) == 2
    assert "unknown model 'vit_tiny_patch16_244'" in capsys.readouterr().err
    assert main(["fit", "-c", config, "--data.dataset", "imagefolder", "--data.root", str(tmp_path / "missing"),
                 f"--trainer.default_root_dir={tmp_path}"]) == 2
    assert "does not exist" in capsys.readouterr().err


def test_fit_writes_the_run_folder_and_the_attention_figure(tmp_path, capsys):
    args = ["fit", "-c", str(ROOT / "configs/vit/digits.yaml"), "--trainer.max_epochs", "1",
            "--trainer.limit_train_batches", "2", "--trainer.limit_val_batches", "1", "--run_name", "t",
            "--trainer.enable_progress_bar", "false", f"--trainer.default_root_dir={tmp_path}"]
    assert main(args) == 0
    assert main(args) == 0  # a second run gets the next version
    run = tmp_path / "t" / "version_0"
    assert (tmp_path / "t" / "version_1").is_dir()
    assert (run / "metrics.csv").is_file() and (run / "config.yaml").is_file()
    assert list(run.glob("events.out.tfevents.*"))
    assert (run / "checkpoints" / "last.ckpt").is_file() and list(run.glob("checkpoints/best-*.ckpt"))
    out = tmp_path / "attention.png"
    assert main(["attention", "--ckpt", str(run / "checkpoints" / "last.ckpt"), "--out", str(out), "--num", "6"]) == 0
    with Image.open(out) as im:
        assert im.width > 400 and im.height > 100
    capsys.readouterr()
    assert main(["attention", "--ckpt", str(run / "checkpoints" / "last.ckpt"), "--num", "0"]) == 2
    assert "vitkit: error: --num must be positive, got 0 — " in capsys.readouterr().err


def test_predict_writes_predictions_csv(tmp_path):
    config = str(ROOT / "configs/vit/digits.yaml")
    common = ["--run_name", "p", "--trainer.enable_progress_bar", "false", f"--trainer.default_root_dir={tmp_path}"]
    assert main(["fit", "-c", config, "--trainer.max_epochs", "1", "--trainer.limit_train_batches", "1",
                 "--trainer.limit_val_batches", "1", *common]) == 0
    ckpt = tmp_path / "p" / "version_0" / "checkpoints" / "last.ckpt"
    assert main(["predict", "-c", config, "--ckpt_path", str(ckpt), *common]) == 0
    rows = (tmp_path / "p" / "version_1" / "predictions.csv").read_text().splitlines()
    assert rows[0] == "index,pred,pred_name,confidence,label"
    assert len(rows) == 1 + 359  # the digits test split
