"""CvT through the command line: the digits config trains a batch and the attention figure is drawn."""

from pathlib import Path

from PIL import Image

from vitkit.cli import main

ROOT = Path(__file__).parents[1]


def test_cvt_digits_fit_and_attention_figure(tmp_path):
    args = ["fit", "-c", str(ROOT / "configs/cvt/digits.yaml"), "--trainer.max_epochs", "1",
            "--trainer.limit_train_batches", "2", "--trainer.limit_val_batches", "1", "--run_name", "c",
            "--trainer.enable_progress_bar", "false", f"--trainer.default_root_dir={tmp_path}"]
    assert main(args) == 0
    ckpt = tmp_path / "c" / "version_0" / "checkpoints" / "last.ckpt"
    out = tmp_path / "cvt_attention.png"
    assert main(["attention", "--ckpt", str(ckpt), "--out", str(out), "--num", "4"]) == 0
    with Image.open(out) as im:
        assert im.width > 300 and im.height > 100


def test_models_table_lists_cvt_presets(capsys):
    assert main(["models", "cvt_13"]) == 0
    out = capsys.readouterr().out
    assert "20.00M" in out and "4.57" in out  # the paper: 20M params, 4.5 GFLOPs (every token through every block)
