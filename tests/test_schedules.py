import math

import pytest
import torch

from lit_mlcourse.errors import ConfigValueError
from lit_mlcourse.schedules import WarmupDecay


def lrs(scheduler: WarmupDecay, steps: int) -> list[float]:
    """Learning rate used by each of the first ``steps`` optimizer steps."""
    seen = []
    for _ in range(steps):
        seen.append(scheduler.optimizer.param_groups[0]["lr"])
        scheduler.optimizer.step()
        scheduler.step()
    return seen


def optimizer(lr: float = 1.0, *extra_lrs: float) -> torch.optim.Optimizer:
    groups = [{"params": [torch.nn.Parameter(torch.zeros(1))], "lr": value} for value in (lr, *extra_lrs)]
    return torch.optim.SGD(groups, lr=lr)


def test_linear_warmup_then_cosine_by_hand():
    # W = 4 warmup steps, T = 12: warmup (t+1)/W, then 0.5 * (1 + cos(pi * (t - 4) / 8)).
    scheduler = WarmupDecay(optimizer(0.8), warmup_steps=4, decay="cosine", total_steps=12)
    expected = [0.2, 0.4, 0.6, 0.8] + [0.8 * 0.5 * (1 + math.cos(math.pi * k / 8)) for k in range(8)]
    assert lrs(scheduler, 12) == pytest.approx(expected)
    assert expected[4] == pytest.approx(0.8) and expected[8] == pytest.approx(0.4)


def test_linear_decay_to_min_lr_by_hand():
    scheduler = WarmupDecay(optimizer(1.0), warmup_steps=2, decay="linear", min_lr=0.1, total_steps=6)
    # decay: 0.1 + 0.9 * (1 - (t - 2) / 4) for t = 2..5
    assert lrs(scheduler, 6) == pytest.approx([0.5, 1.0, 1.0, 0.775, 0.55, 0.325])


def test_warmup_fraction_is_resolved_when_the_horizon_is_bound():
    scheduler = WarmupDecay(optimizer(1.0), warmup_fraction=0.25, decay="constant")
    scheduler.bind_total_steps(8)
    assert scheduler.warmup_steps == 2
    assert lrs(scheduler, 4) == pytest.approx([0.5, 1.0, 1.0, 1.0])


def test_groups_keep_their_ratio_down_to_min_lr():
    scheduler = WarmupDecay(optimizer(1.0, 0.1), decay="linear", min_lr=0.2, total_steps=4)
    for _ in range(4):
        scheduler.optimizer.step()
        scheduler.step()
    assert [g["lr"] for g in scheduler.optimizer.param_groups] == pytest.approx([0.2, 0.02])


@pytest.mark.parametrize(
    ("kwargs", "total", "message"),
    [
        (
            {"warmup_steps": 100},
            50,
            r"warmup \(100 optimizer steps\) must be shorter than the whole training \(50",
        ),
        (
            {"warmup_fraction": 0.5, "min_lr": 2.0},
            10,
            r"min_lr=2.0 is above the optimizer's learning rate 1.0",
        ),
    ],
)
def test_bad_horizons_are_explained(kwargs, total, message):
    with pytest.raises(ConfigValueError, match=message):
        WarmupDecay(optimizer(1.0), **kwargs, total_steps=total)


def test_infinite_training_has_no_horizon():
    with pytest.raises(ConfigValueError, match=r"max_epochs or trainer\.max_steps"):
        WarmupDecay(optimizer(), warmup_steps=1).bind_total_steps(float("inf"))


def test_state_round_trip_resumes_the_same_schedule():
    first = WarmupDecay(optimizer(1.0), warmup_steps=3, total_steps=10)
    lrs(first, 5)
    # As Lightning resumes: a fresh optimizer and schedule, then both states loaded.
    second = WarmupDecay(optimizer(1.0), warmup_steps=3, total_steps=10)
    second.optimizer.load_state_dict(first.optimizer.state_dict())
    second.load_state_dict(first.state_dict())
    resumed = lrs(second, 5)
    assert resumed == pytest.approx(lrs(first, 5))
    assert resumed[0] == pytest.approx(0.5 * (1 + math.cos(math.pi * 2 / 7)))
