"""The Hessian's extreme eigenvalues (lit_mlcourse.curvature, callbacks.HessianEigenvalues) against exact Hessians
(torch.autograd.functional.hessian + eigvalsh), the saddle point detected, and the callback in a `lit` run."""

from __future__ import annotations

import csv

import lightning as L
import pytest
import torch
from conftest import CONFIGS, run_lit
from torch import nn
from torch.func import functional_call

from lit_mlcourse.callbacks import HessianEigenvalues
from lit_mlcourse.curvature import LossCurvature, critical_point_verdict, lanczos_extremes
from lit_mlcourse.models import GAN, ImageClassifier, Regressor


def exact_extremes(loss, parameters: dict[str, torch.Tensor]) -> tuple[float, float]:
    """Largest and smallest eigenvalue of the full Hessian of ``loss`` at ``parameters`` (autograd + eigvalsh)."""
    names = list(parameters)
    shapes = [parameters[name].shape for name in names]
    flat = torch.cat([parameters[name].reshape(-1) for name in names])

    def of_flat(vector: torch.Tensor) -> torch.Tensor:
        pieces = torch.split(vector, [shape.numel() for shape in shapes])
        return loss({name: piece.view(shape) for name, piece, shape in zip(names, pieces, shapes, strict=True)})

    hessian = torch.autograd.functional.hessian(of_flat, flat)
    values = torch.linalg.eigvalsh((hessian + hessian.T) / 2)
    return float(values[-1]), float(values[0])


def lanczos_of(losses, parameters, iterations: int, seed: int = 0):
    curvature = LossCurvature(losses, parameters)
    return curvature, lanczos_extremes(
        curvature.hessian_vector_product, curvature.size, iterations, torch.Generator().manual_seed(seed)
    )


def quadratic(spectrum: torch.Tensor, seed: int = 0):
    """0.5 w'Aw + b'w with A = Q diag(spectrum) Q' (Q a random rotation), in float64."""
    generator = torch.Generator().manual_seed(seed)
    q, _ = torch.linalg.qr(torch.randn(len(spectrum), len(spectrum), generator=generator, dtype=torch.float64))
    a = q @ torch.diag(spectrum.double()) @ q.T
    b = torch.randn(len(spectrum), generator=generator, dtype=torch.float64)
    return lambda p: 0.5 * p["w"] @ a @ p["w"] + b @ p["w"]


def test_lanczos_on_a_quadratic_finds_its_exact_extreme_eigenvalues():
    spectrum = torch.tensor([-3.0, -0.5, 0.1, 0.7, 1.0, 2.0, 4.0, 9.5, 12.0, 30.0])
    loss = quadratic(spectrum)
    w = {"w": torch.randn(10, dtype=torch.float64, generator=torch.Generator().manual_seed(1))}
    assert exact_extremes(loss, w) == pytest.approx((30.0, -3.0), abs=1e-10)
    _, found = lanczos_of([loss], w, iterations=10)
    assert (found.largest, found.smallest) == pytest.approx((30.0, -3.0), abs=1e-9)


def test_few_lanczos_steps_find_well_separated_extremes_from_inside_the_spectrum():
    # 300 parameters, 40 steps: the extremes (outliers, as a trained network's top eigenvalues are) converge first.
    spectrum = torch.cat(
        [torch.tensor([-4.0]), torch.linspace(0.0, 1.0, 298, dtype=torch.float64), torch.tensor([50.0])]
    )
    w = {"w": torch.zeros(300, dtype=torch.float64)}
    _, found = lanczos_of([quadratic(spectrum, seed=3)], w, iterations=40)
    assert found.iterations == 40
    assert found.largest == pytest.approx(50.0, rel=1e-8) and found.smallest == pytest.approx(-4.0, rel=1e-8)
    assert found.smallest >= -4.0 - 1e-9 and found.largest <= 50.0 + 1e-9  # Ritz values never leave the spectrum


def test_a_two_layer_network_over_several_batches_matches_its_exact_hessian():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(3, 4), nn.Tanh(), nn.Linear(4, 2))  # 26 weights
    batches = [(torch.randn(16, 3), torch.randint(0, 2, (16,))) for _ in range(3)]

    def loss_of(batch):
        return lambda p: nn.functional.cross_entropy(functional_call(net, p, (batch[0],)), batch[1])

    parameters = {name: value.detach() for name, value in net.named_parameters()}
    mean_loss = lambda p: sum(loss_of(batch)(p) for batch in batches) / len(batches)  # noqa: E731
    largest, smallest = exact_extremes(mean_loss, parameters)
    curvature, found = lanczos_of([loss_of(batch) for batch in batches], parameters, iterations=26)
    assert found.largest == pytest.approx(largest, rel=1e-4)
    assert found.smallest == pytest.approx(smallest, abs=1e-4 * largest)
    assert smallest < -1e-3 * largest  # an untrained tanh network: negative curvature exists, and is found
    # the gradient too: autograd's
    reference = torch.autograd.grad(mean_loss(dict(net.named_parameters())), list(net.parameters()))
    assert torch.allclose(curvature.gradient(), torch.cat([g.reshape(-1) for g in reference]), atol=1e-6)


def test_the_courses_saddle_is_detected_and_a_minimum_is_not_called_one():
    # The course's network of two weights, y = w2 * w1 * x, fitted to x = 1, y = 1: the origin is a critical point
    # (gradient 0) whose Hessian [[0, -2], [-2, 0]] has eigenvalues 2 and -2: a saddle, not a local minimum.
    loss = lambda p: (1.0 - p["w2"] * p["w1"]) ** 2  # noqa: E731
    origin = {"w1": torch.tensor(0.0, dtype=torch.float64), "w2": torch.tensor(0.0, dtype=torch.float64)}
    curvature, found = lanczos_of([loss], origin, iterations=2)
    assert (found.largest, found.smallest) == pytest.approx((2.0, -2.0), abs=1e-12)
    assert float(curvature.gradient().norm()) == 0.0
    assert critical_point_verdict(found.largest, found.smallest, tolerance=1e-3) == "saddle point"
    # At w1 = w2 = 1 (a global minimum: the loss is 0) the eigenvalues are 4 and 0: a minimum.
    ones = {"w1": torch.tensor(1.0, dtype=torch.float64), "w2": torch.tensor(1.0, dtype=torch.float64)}
    _, found = lanczos_of([loss], ones, iterations=2)
    assert (found.largest, found.smallest) == pytest.approx((4.0, 0.0), abs=1e-12)
    assert critical_point_verdict(found.largest, found.smallest, tolerance=1e-3) == "local minimum"
    assert critical_point_verdict(4.0, -0.01, tolerance=1e-3) == "saddle point"  # -0.01 is clearly negative
    assert critical_point_verdict(4.0, -0.001, tolerance=1e-3) == "local minimum"  # within 1e-3 of 4: rounding


class LossOf(nn.Module):
    """``model.training_loss`` as a module's forward, which torch.func.functional_call calls."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, batch):
        return self.model.training_loss(batch)


def tiny_classifier() -> ImageClassifier:
    torch.manual_seed(0)
    net = lambda classes, channels: nn.Sequential(nn.Flatten(), nn.Linear(channels * 16, 8), nn.Tanh(),  # noqa: E731
                                                   nn.Dropout(0.5), nn.Linear(8, classes))  # fmt: skip
    return ImageClassifier(net=net, num_classes=3, image_shape=(1, 4, 4), label_smoothing=0.1)


def tiny_regressor() -> Regressor:
    torch.manual_seed(0)
    return Regressor(input_shape=(3, 2), hidden=[4], activation="tanh", batch_norm=True, dropout=0.3)


@pytest.mark.parametrize(
    "make, batch",
    [
        (tiny_classifier, lambda: (torch.randn(12, 1, 4, 4), torch.randint(0, 3, (12,)))),
        (tiny_regressor, lambda: (torch.randn(12, 3, 2), torch.randn(12))),
    ],
    ids=["image classifier", "PM2.5 regressor"],
)
def test_the_callbacks_estimate_for_a_task_model_matches_the_exact_hessian_of_its_training_loss(make, batch):
    model = make()
    batches = [batch(), batch()]
    for _ in range(2):  # move batch norm's running statistics off their initial values
        model.train()
        model.training_loss(batches[0])
    model.eval()  # as the callback evaluates: dropout off, running statistics
    objective = LossOf(model)
    parameters = {f"model.{name}": value.detach() for name, value in model.named_parameters()}
    mean_loss = lambda p: sum(functional_call(objective, p, (b,)) for b in batches) / len(batches)  # noqa: E731
    largest, smallest = exact_extremes(mean_loss, parameters)
    running = [buffer.clone() for buffer in model.buffers()]
    result = HessianEigenvalues(iterations=200).estimate(model, batches)
    assert result["max_eig"] == pytest.approx(largest, rel=1e-4)
    assert result["min_eig"] == pytest.approx(smallest, abs=1e-4 * abs(largest))
    assert result["ratio"] == pytest.approx(smallest / largest, abs=1e-4)
    assert all(torch.equal(a, b) for a, b in zip(running, model.buffers(), strict=True))  # statistics untouched


def test_the_gan_is_refused_with_why():
    gan = GAN.__new__(GAN)  # the refusal reads the class; no judge or data needed
    with pytest.raises(ValueError, match=r"HessianEigenvalues does not apply to GAN: a GAN is a two-player game"):
        HessianEigenvalues().setup(None, gan, "fit")


def test_bad_settings_name_the_setting():
    with pytest.raises(ValueError, match=r"HessianEigenvalues: num_batches=0; give an integer >= 1"):
        HessianEigenvalues(num_batches=0)
    with pytest.raises(ValueError, match=r"epochs=\[0, 2\]; epochs count from 1"):
        HessianEigenvalues(epochs=[0, 2])


@pytest.mark.slow
def test_lit_fit_logs_the_eigenvalues_at_chosen_epochs_and_the_end_without_changing_training(tmp_path):
    fit = ["fit", "--config", str(CONFIGS / "quickstart.yaml"), "--trainer.max_epochs", "2",
           "--trainer.limit_train_batches", "4", "--trainer.limit_val_batches", "1",
           "--test_after_fit", "false"]  # fmt: skip
    hessian = ["--trainer.callbacks+=HessianEigenvalues", "--trainer.callbacks.epochs=[1]",
               "--trainer.callbacks.num_batches=1", "--trainer.callbacks.batch_size=32",
               "--trainer.callbacks.iterations=8"]  # fmt: skip
    result = run_lit(*fit, *hessian, "--trainer.default_root_dir", str(tmp_path / "with"))
    run = tmp_path / "with" / "quickstart" / "version_0"
    rows = list(csv.DictReader((run / "hessian.csv").open()))
    assert [(row["epoch"], row["step"]) for row in rows] == [("1", "4"), ("2", "8")]
    for row in rows:
        largest, smallest = float(row["max_eig"]), float(row["min_eig"])
        assert largest > 0 and smallest <= largest and float(row["grad_norm"]) > 0
        assert row["verdict"] == critical_point_verdict(largest, smallest, 1e-3)
        assert f"hessian after epoch {row['epoch']} (step {row['step']}): largest eigenvalue {largest:.4g}" in (
            result.stdout + result.stderr
        )
    logged = [row for row in csv.DictReader((run / "metrics.csv").open()) if row.get("hessian/max_eig")]
    assert [float(row["hessian/max_eig"]) for row in logged] == pytest.approx([float(r["max_eig"]) for r in rows])
    # The evaluations leave training as it was: the same weights as the run without the callback.
    run_lit(*fit, "--trainer.default_root_dir", str(tmp_path / "without"))
    load = lambda root: torch.load(root / "quickstart" / "version_0" / "checkpoints" / "last.ckpt",  # noqa: E731
                                   map_location="cpu", weights_only=True)["state_dict"]  # fmt: skip
    with_callback, without = load(tmp_path / "with"), load(tmp_path / "without")
    assert all(torch.equal(with_callback[key], without[key]) for key in without)


def test_two_of_them_in_one_trainer_keep_their_own_state():
    # lit batch-sizes adds its own beside one the config may have: Lightning refuses two stateful callbacks that share
    # a state key.
    import lightning as L

    trainer = L.Trainer(callbacks=[HessianEigenvalues(), HessianEigenvalues(epochs=[1], num_batches=2)], logger=False)
    keys = [callback.state_key for callback in trainer.callbacks if isinstance(callback, HessianEigenvalues)]
    assert len(set(keys)) == 2


class _Stream(torch.utils.data.IterableDataset):
    def __iter__(self):
        return iter([torch.ones(3)] * 4)


class _NoLength(torch.utils.data.Dataset):
    def __getitem__(self, index):
        return torch.ones(3)


class _Linear(L.LightningModule):
    def __init__(self) -> None:
        super().__init__()
        self.layer = nn.Linear(3, 1)

    def training_loss(self, batch) -> torch.Tensor:
        inputs = torch.cat(list(batch.values())) if isinstance(batch, dict) else batch
        return self.layer(inputs).pow(2).mean()

    def training_step(self, batch, batch_idx):
        return self.training_loss(batch)

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.1)


@pytest.mark.parametrize(
    ("loaders", "kind"),
    [
        (lambda: torch.utils.data.DataLoader(_Stream(), batch_size=2), "a DataLoader over _Stream, an IterableDataset"),
        (lambda: {"a": torch.utils.data.DataLoader(torch.ones(4, 3), batch_size=2)}, "a dict"),
        (
            lambda: torch.utils.data.DataLoader(_NoLength(), batch_size=2, sampler=[0, 1, 2, 3]),
            "a DataLoader over _NoLength, a dataset without a length",
        ),
    ],
    ids=["an iterable dataset", "a dict of loaders", "a dataset without a length"],
)
def test_loaders_it_cannot_draw_from_by_index_are_refused_before_the_first_epoch(loaders, kind):
    trainer = L.Trainer(max_epochs=1, logger=False, enable_checkpointing=False, enable_progress_bar=False,
                        enable_model_summary=False, callbacks=[HessianEigenvalues(num_batches=1)])  # fmt: skip
    model = _Linear()
    before = [parameter.detach().clone() for parameter in model.parameters()]
    with pytest.raises(ValueError, match=rf"train_dataloader\(\) gives {kind}\. Use it with a DataModule"):
        trainer.fit(model, train_dataloaders=loaders())
    assert all(torch.equal(a, b) for a, b in zip(before, model.parameters(), strict=True))  # not one step taken
