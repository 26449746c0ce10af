"""configs/imagefolder_cnn.yaml on the real ants / bees folder through the `lit` command (shortened)."""

import csv
import json
from concurrent.futures import Future
from pathlib import Path

import pytest
import torch
from conftest import CONFIGS, lit_in_process, run_lit, selected
from image_fixtures import make_splits

from lit_mlcourse.models import ImageClassifier

SHORT = ["--trainer.max_epochs", "1", "--data.image_size", "32", "--data.resize", "36"]


def cross_validate(root: Path) -> Path:
    """`lit cv --config configs/imagefolder_cnn.yaml --folds 2` on 4 ants and 4 bees, in ``root``."""
    data = make_splits(root / "data", {"ants": 4, "bees": 4})
    run_lit("cv", "--config", str(CONFIGS / "imagefolder_cnn.yaml"), "--data.root", str(data), "--folds", "2",
            "--trainer.max_epochs", "1", "--data.image_size", "16", "--data.num_workers", "0",
            "--trainer.default_root_dir", str(root), cwd=root)  # fmt: skip
    return root


@pytest.fixture(scope="module", autouse=True)
def runs(request, background, tmp_path_factory) -> dict[str, Future]:
    """test_cv_over_an_image_folder's `lit cv`, started in the background (conftest.background) at the module's first
    test, while the other test's fit and predictions run."""
    wanted = selected(request)
    return {"cv": background.submit(cross_validate, tmp_path_factory.mktemp("cv"))} if wanted("cv_over") else {}


def test_fit_then_predict_names_the_classes(hymenoptera_dir, tmp_path):
    config = ["--config", str(CONFIGS / "imagefolder_cnn.yaml"), "--data.root", str(hymenoptera_dir)]
    run_lit("fit", *config, *SHORT, "--trainer.default_root_dir", str(tmp_path), cwd=tmp_path)
    run = tmp_path / "imagefolder_cnn" / "version_0"
    summary = json.loads((run / "summary.json").read_text())
    assert "test/acc" not in summary["metrics"]  # no test/ folder: fit ends without a test
    assert 0.0 < summary["metrics"]["val/acc"] <= 1.0
    assert (run / "confusion_matrix_val.png").is_file()

    best = run / "checkpoints" / "best.ckpt"
    model = ImageClassifier.load_from_checkpoint(best, map_location="cpu")  # no arguments needed
    assert model.class_names == ["ants", "bees"] and model(torch.zeros(1, 3, 32, 32)).shape == (1, 2)
    # the class index is kept twice: the model's names of its outputs, and the DataModule's state, which a resume
    # compares with the folder's classes (ImageFolderDataModule.load_state_dict)
    assert torch.load(best, weights_only=True)["ImageFolderDataModule"] == {"class_names": ["ants", "bees"]}

    # `lit predict` in this process (conftest.lit_in_process): predictions are written as subprocesses elsewhere
    predict_dir = hymenoptera_dir / "val" / "bees"
    lit_in_process("predict", *config, *SHORT, "--ckpt_path", str(best), "--data.predict_dir", str(predict_dir),
                   "--trainer.default_root_dir", str(tmp_path))  # fmt: skip
    with (tmp_path / "imagefolder_cnn" / "version_1" / "predictions.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    images = sorted(path for path in predict_dir.iterdir() if path.suffix.lower() in (".jpg", ".jpeg", ".png"))
    assert [row["path"] for row in rows] == [str(path) for path in images]
    assert {row["class"] for row in rows} <= {"ants", "bees"}
    assert all(0.5 <= float(row["probability"]) <= 1.0 for row in rows)  # the larger of two probabilities


def test_cv_over_an_image_folder(runs):
    root = runs["cv"].result()  # cross_validate's folder
    summary = json.loads((root / "imagefolder_cnn" / "version_0" / "cv_summary.json").read_text())
    assert summary["monitor"] == "val/acc" and len(summary["folds"]) == 2
