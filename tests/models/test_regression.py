import math

import lightning as L
import pytest
import torch
from pm25_fixtures import write_train
from torch.utils.data import DataLoader, TensorDataset

from lit_mlcourse.data import PM25DataModule
from lit_mlcourse.models import Regressor

STATS = {"mean": [10.0, 20.0], "std": [2.0, 4.0], "target_mean": 30.0, "target_std": 5.0}


def test_model_owns_its_standardization():
    torch.manual_seed(0)
    model = Regressor(input_shape=(3, 2), hidden=[], standardization=STATS)
    x = torch.randn(4, 3, 2) * 3 + torch.tensor([10.0, 20.0])
    z = model.net(((x - torch.tensor([10.0, 20.0])) / torch.tensor([2.0, 4.0])).flatten(1)).squeeze(1)
    torch.testing.assert_close(model(x), z * 5.0 + 30.0)


@pytest.mark.parametrize("loss", ["mse", "l1", "huber"])
def test_loss_is_on_the_standardized_target_and_metrics_in_its_units(loss):
    torch.manual_seed(0)
    model = Regressor(input_shape=(3, 2), loss=loss, huber_delta=0.5, standardization=STATS)
    x, y = torch.randn(8, 3, 2) + 15, torch.randn(8) * 5 + 30
    z = model.standardized(x)
    target = (y - 30.0) / 5.0
    expected = {
        "mse": torch.nn.functional.mse_loss(z, target),
        "l1": torch.nn.functional.l1_loss(z, target),
        "huber": torch.nn.functional.huber_loss(z, target, delta=0.5),
    }[loss]
    model.log = model.log_dict = lambda *args, **kwargs: None  # outside a Trainer
    torch.testing.assert_close(model._step((x, y), "val"), expected)
    rmse = model.val_metrics.compute()["val/rmse"]
    torch.testing.assert_close(rmse, torch.sqrt(torch.mean((model(x) - y) ** 2)), rtol=1e-5, atol=1e-5)


def test_learns_a_linear_rule_in_original_units(tmp_path):
    torch.manual_seed(0)
    x = torch.randn(512, 2, 3) * torch.tensor([1.0, 10.0, 100.0]) + 50
    y = 0.5 * x[:, -1, 0] - 0.02 * x[:, 0, 2] + 7
    model = Regressor(
        input_shape=(2, 3),
        standardization={
            "mean": x.flatten(0, 1).mean(0).tolist(),
            "std": x.flatten(0, 1).std(0).tolist(),
            "target_mean": float(y.mean()),
            "target_std": float(y.std()),
        },
        optimizer=lambda params: torch.optim.Adam(params, lr=0.05),
    )
    loader = DataLoader(TensorDataset(x, y), batch_size=64, shuffle=True)
    trainer = L.Trainer(
        max_epochs=30,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
    )
    trainer.fit(model, loader)
    assert torch.sqrt(torch.mean((model(x) - y) ** 2)) < 0.02 * y.std()


def test_fast_dev_run_and_load_from_checkpoint_without_arguments(tmp_path):
    write_train(tmp_path / "data")
    dm = PM25DataModule(data_dir=str(tmp_path / "data"), batch_size=16)
    model = Regressor(input_shape=dm.input_shape, hidden=[8], dropout=0.1, standardization=dm.standardization)
    trainer = L.Trainer(
        max_epochs=1,
        limit_train_batches=2,
        limit_val_batches=2,
        default_root_dir=tmp_path,
        logger=False,
        enable_progress_bar=False,
    )
    trainer.fit(model, dm)
    path = tmp_path / "model.ckpt"
    trainer.save_checkpoint(path)
    metrics = set(trainer.callback_metrics)
    loaded = Regressor.load_from_checkpoint(path).eval()
    x = dm.windows.inputs[:5]
    model.eval()
    torch.testing.assert_close(loaded(torch.from_numpy(x)), model(torch.from_numpy(x)))
    assert metrics >= {"train/loss", "train/rmse", "val/rmse", "val/mae", "val/r2"}


def test_input_hours_keep_only_the_latest_hours_of_each_feature():
    torch.manual_seed(0)
    model = Regressor(input_shape=(4, 2), input_hours=[4, 2], hidden=[5]).eval()
    assert model.net.body[0].in_features == 4 + 2
    x = torch.randn(3, 4, 2)
    changed = x.clone()
    changed[:, :2, 1] += 100.0  # the two oldest hours of feature 1 are not inputs
    torch.testing.assert_close(model(changed), model(x))
    changed[:, 2, 1] += 100.0  # its third hour is
    assert not torch.allclose(model(changed), model(x))


def test_resuming_with_more_epochs_stretches_the_schedule(tmp_path):
    from functools import partial

    from lightning.pytorch.callbacks import ModelCheckpoint

    from lit_mlcourse.schedules import WarmupDecay

    torch.manual_seed(0)
    x, y = torch.randn(64, 2, 3), torch.randn(64)
    loader = DataLoader(TensorDataset(x, y), batch_size=16)

    def fit(max_epochs: int, ckpt_path=None) -> tuple[Regressor, L.Trainer]:
        model = Regressor(
            input_shape=(2, 3),
            optimizer=partial(torch.optim.SGD, lr=0.1),
            lr_scheduler=partial(WarmupDecay, warmup_steps=2),
        )
        checkpoint = ModelCheckpoint(dirpath=tmp_path, save_last=True)
        trainer = L.Trainer(
            max_epochs=max_epochs, logger=False, callbacks=[checkpoint, recorder], enable_progress_bar=False
        )
        trainer.fit(model, loader, ckpt_path=ckpt_path)
        return model, trainer

    class LearningRates(L.Callback):
        def __init__(self):
            self.seen = []

        def on_train_batch_start(self, trainer, *args):
            self.seen.append(trainer.optimizers[0].param_groups[0]["lr"])

    recorder = LearningRates()
    fit(2)  # 8 steps: the cosine reaches 0 at the end
    recorder.seen.clear()
    with pytest.warns(UserWarning, match="changed from 8 to 16 optimizer steps"):
        _, trainer = fit(4, ckpt_path=tmp_path / "last.ckpt")
    assert trainer.lr_scheduler_configs[0].scheduler.total_steps == 16
    # steps 8..15 follow a 16-step cosine instead of staying at the end of the 8-step one (lr 0)
    expected = [0.1 * 0.5 * (1 + math.cos(math.pi * (step - 2) / 14)) for step in range(8, 16)]
    assert recorder.seen == pytest.approx(expected)
