"""`vitkit bench`: two tiny models on fake data give all three report files with every column filled; bad input
(unknown or non-classifier models, empty budgets, an existing report) is refused before anything is trained."""

import json
import re

import pytest
from PIL import Image

from vitkit.bench.config import BenchConfigError, load_bench_config
from vitkit.bench.report import COLUMNS, prepare_out
from vitkit.cli import main


def _write_config(tmp_path, **extra):
    import yaml

    cfg = {"models": ["vit_test", "cvt_test"], "data": {"dataset": "fake", "batch_size": 8, "fake_samples": 32,
                                                          "fake_classes": 4},
           "task": {"lr": 1e-3, "warmup_epochs": 0}, "budget": {"epochs": 1}, "target_accuracy": 0.01,
           "throughput": {"batch_size": 4, "steps": 2, "warmup": 1},
           "trainer": {"limit_train_batches": 2, "limit_val_batches": 1}, **extra}
    path = tmp_path / "bench.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def test_bench_writes_a_complete_report(tmp_path, capsys):
    out = tmp_path / "out"
    assert main(["bench", "-c", str(_write_config(tmp_path)), "--out", str(out)]) == 0
    assert {p.name for p in out.iterdir()} >= {"report.md", "report.json", "plot.png"}
    table = [line for line in (out / "report.md").read_text().splitlines() if line.startswith("| ")]
    assert table[0] == "| " + " | ".join(COLUMNS) + " |" and len(table) == 3
    for line in table[1:]:
        cells = [c.strip() for c in line.strip("|").split("|")]
        assert len(cells) == len(COLUMNS) and all(cells) and not any(c in ("nan", "None") for c in cells)
    report = json.loads((out / "report.json").read_text())
    assert [r["model"] for r in report["results"]] == ["vit_test", "cvt_test"]
    for r in report["results"]:
        assert all(v is not None for v in r.values()), r
        assert r["gflops"] > 0 and r["train_img_s"] > 0 and r["infer_img_s"] > 0 and r["peak_mem_mb"] > 0
        assert 0 <= r["final_top1"] <= 1 and r["history"] and r["epochs"] == 1.0
    assert report["environment"]["device"].startswith("cpu") and report["environment"]["precision"] == "32-true"
    with Image.open(out / "plot.png") as im:
        assert im.width > 600
    assert "vit_test | vitkit" in capsys.readouterr().out
    # a second run into the same folder is refused, unless told to overwrite
    assert main(["bench", "-c", str(_write_config(tmp_path)), "--out", str(out)]) == 2
    assert "already holds a bench report" in capsys.readouterr().err
    assert prepare_out(out, overwrite=True) == out


def test_history_records_every_validation_with_fractional_epochs(tmp_path):
    """A time budget usually stops mid-epoch, and validation may run mid-epoch: the history keeps both exact."""
    trainer = {"limit_train_batches": 2, "limit_val_batches": 1, "val_check_interval": 1}
    out = tmp_path / "out"
    assert main(["bench", "-c", str(_write_config(tmp_path, models=["vit_test"], trainer=trainer)),
                 "--out", str(out)]) == 0
    (result,) = json.loads((out / "report.json").read_text())["results"]
    minutes, epochs, _ = zip(*result["history"], strict=True)
    assert epochs == (0.5, 1.0) and result["epochs"] == 1.0
    assert 0 < minutes[0] < minutes[1] == pytest.approx(result["train_minutes"], rel=0.05)


FEATURES_ONLY = {"model_kwargs": {"resnet18": {"num_classes": 0}}}  # a timm model that is not a classifier


@pytest.mark.parametrize(("args", "extra", "message"), [
    (["--models", "vit_tset", "cvt_test"], {}, "unknown model 'vit_tset'.*did you mean.*vit_test"),
    ([], {**FEATURES_ONLY, "models": ["resnet18"]},
     r"resnet18 is not a plain image classifier.*is \(2, 512\), expected logits \(2, 4\)"),
    (["--epochs", "0"], {}, "budget must be a positive"),
    (["--minutes", "-5"], {}, "budget must be a positive"),
    (["--models", "vit_test", "vit_test"], {}, "lists a name twice"),
])
def test_bad_input_is_refused_with_a_message(tmp_path, capsys, args, extra, message):
    out = tmp_path / "out"
    assert main(["bench", "-c", str(_write_config(tmp_path, **extra)), "--out", str(out), *args]) == 2
    assert re.search(message, capsys.readouterr().err, re.S)
    assert not (out / "report.md").exists()


def test_config_errors(tmp_path):
    with pytest.raises(BenchConfigError, match="unknown setting"):
        load_bench_config(_write_config(tmp_path, epochs=3))
    with pytest.raises(BenchConfigError, match="exactly one of epochs or minutes"):
        load_bench_config(None, models=["vit_test"], budget={"epochs": 2, "minutes": 3})
    with pytest.raises(BenchConfigError, match="set by the bench itself"):
        load_bench_config(None, models=["vit_test"], budget={"epochs": 1}, trainer={"max_epochs": 3})
    with pytest.raises(BenchConfigError, match="does not exist"):
        load_bench_config(tmp_path / "missing.yaml")


def test_bench_configs_are_valid():
    from pathlib import Path

    from vitkit.models import is_model

    configs = sorted((Path(__file__).parents[2] / "configs" / "bench").glob("*.yaml"))
    assert {p.name for p in configs} >= {"digits.yaml", "hybrid_vs_vit_cifar10.yaml"}
    for path in configs:
        assert path.read_text().startswith("# vitkit bench "), path
        cfg = load_bench_config(path)
        assert all(is_model(m) for m in cfg.models) and cfg.target_accuracy is not None
