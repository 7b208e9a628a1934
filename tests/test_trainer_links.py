"""The data's class description is linked into the task; a class count given for the model that disagrees with the
data is refused with a clear message (the link would otherwise overwrite it silently)."""

from pathlib import Path

from vitkit.cli import main
from vitkit.trainer import run_lightning_cli

CONFIG = str(Path(__file__).parents[1] / "configs" / "vit" / "digits.yaml")


def test_class_count_disagreeing_with_the_data_is_refused(tmp_path, capsys):
    args = ["-c", CONFIG, f"--trainer.default_root_dir={tmp_path}", "--model.init_args.num_classes"]
    assert main(["fit", *args, "5"]) == 2  # refused once the classes are built, before any training
    assert ("the model is given num_classes=5 but dataset 'digits' has 10 classes (0, 1, 2, 3, 4, 5, 6, 7, 8, 9): "
            "the class count comes from the data" in capsys.readouterr().err)
    cli = run_lightning_cli([*args, "10"], run=False)  # agreeing is fine
    assert cli.model.hparams.num_classes == 10
