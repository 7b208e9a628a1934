"""The data's class description reaches the task: linked class count/names, category ids filled into tasks that take
them; a class count or category ids given for the task that disagree with the data are refused."""

import json
from pathlib import Path

import lightning as L
import pytest
from PIL import Image

from vitkit.cli import main
from vitkit.data import DataError, VisionDataModule
from vitkit.trainer import _fill_category_ids, run_lightning_cli

ROOT = Path(__file__).parents[1]
CONFIG = str(ROOT / "configs" / "vit" / "digits.yaml")


def test_class_count_disagreeing_with_the_data_is_refused(tmp_path, capsys):
    args = ["-c", CONFIG, f"--trainer.default_root_dir={tmp_path}", "--model.init_args.num_classes"]
    assert main(["fit", *args, "5"]) == 2  # refused once the classes are built, before any training
    assert ("the model is given num_classes=5 (config or checkpoint) but dataset 'digits' has 10 classes (0, 1, 2, 3, "
            "4, 5, 6, 7, 8, 9) — the class count comes from the data" in capsys.readouterr().err)
    cli = run_lightning_cli([*args, "10"], run=False)  # agreeing is fine
    assert cli.model.hparams.num_classes == 10


class IdsTask(L.LightningModule):
    """Stands for a detection task: maps labels to category ids, given or not."""

    def __init__(self, category_ids: list[int] | None = None) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.category_ids = category_ids


def test_category_ids_are_filled_from_the_data(tmp_path):
    (tmp_path / "train2017").mkdir()
    Image.new("RGB", (8, 8)).save(tmp_path / "train2017" / "a.png")
    (tmp_path / "annotations").mkdir()
    (tmp_path / "annotations" / "instances_train2017.json").write_text(json.dumps(
        {"info": {}, "images": [{"id": 1, "file_name": "a.png", "width": 8, "height": 8}], "annotations": [],
         "categories": [{"id": 4, "name": "cat"}, {"id": 9, "name": "dog"}]}))
    data = VisionDataModule("coco", root=str(tmp_path), task="detection")
    task = IdsTask()
    _fill_category_ids(task, data)
    assert task.category_ids == [4, 9] and task.hparams.category_ids == [4, 9]  # hparams: saved with checkpoints
    _fill_category_ids(IdsTask([4, 9]), data)  # the same ids: fine
    with pytest.raises(DataError, match=r"given category_ids=\[1, 2\] but dataset 'coco' has \[4, 9\]"):
        _fill_category_ids(IdsTask([1, 2]), data)
