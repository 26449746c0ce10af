"""LARS matches the SimCLR / lightly reference update, hand-computed where possible."""

import io

import pytest
import torch
from torch import nn

from lit_mlcourse.optim import LARS


def _model(seed: int = 0) -> nn.Linear:
    torch.manual_seed(seed)
    return nn.Linear(4, 3)


def _data(seed: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    return torch.randn(8, 4, generator=gen), torch.randn(8, 3, generator=gen)


def _step(model: nn.Module, opt: torch.optim.Optimizer, scale: float = 1.0) -> None:
    x, y = _data()
    opt.zero_grad()
    (scale * ((model(x) - y) ** 2).mean()).backward()
    opt.step()


def test_two_steps_match_a_hand_computed_reference():
    model = _model()
    lr, mom, wd, tc, eps = 0.3, 0.9, 1e-2, 0.01, 1e-8
    opt = LARS(model.parameters(), lr=lr, momentum=mom, weight_decay=wd, trust_coefficient=tc, eps=eps)
    w, b = model.weight.detach().clone(), model.bias.detach().clone()
    x, y = _data()
    buf_w = buf_b = None
    for _ in range(2):
        _step(model, opt)
        # Reference: analytic gradients of the mean squared error, then the LARS formula with plain tensor ops.
        err = 2 * (x @ w.T + b - y) / y.numel()
        gw, gb = err.T @ x, err.sum(0)
        gw = gw + wd * w
        gw = gw * (tc * w.norm() / (gw.norm() + eps))
        buf_w = gw if buf_w is None else mom * buf_w + gw
        buf_b = gb if buf_b is None else mom * buf_b + gb
        w, b = w - lr * buf_w, b - lr * buf_b
        torch.testing.assert_close(model.weight.detach(), w)
        torch.testing.assert_close(model.bias.detach(), b)


@pytest.mark.parametrize("scale", [1.0, 1000.0])
def test_first_update_norm_is_lr_times_trust_times_weight_norm(scale):
    model = _model()
    lr, tc = 0.5, 0.02
    opt = LARS(model.parameters(), lr=lr, momentum=0.0, weight_decay=0.0, trust_coefficient=tc)
    before = model.weight.detach().clone()
    _step(model, opt, scale=scale)
    update = model.weight.detach() - before
    torch.testing.assert_close(update.norm(), lr * tc * before.norm())


def test_update_is_independent_of_gradient_scale():
    updates = []
    for scale in (1.0, 1000.0):
        model = _model()
        opt = LARS(model.parameters(), lr=0.5, momentum=0.0, weight_decay=0.0, trust_coefficient=0.02)
        before = model.weight.detach().clone()
        _step(model, opt, scale=scale)
        updates.append(model.weight.detach() - before)
    torch.testing.assert_close(updates[0], updates[1])


@pytest.mark.parametrize("exclude_1d", [True, False])
def test_1d_params_follow_plain_sgd_only_when_excluded(exclude_1d):
    lars_model, sgd_model = _model(), _model()
    # Only the bias trains, so its gradient cannot drift apart through a differently updated weight.
    for model in (lars_model, sgd_model):
        model.weight.requires_grad_(False)
    lars = LARS([lars_model.bias], lr=0.1, momentum=0.9, weight_decay=1e-2, exclude_1d=exclude_1d)
    sgd = torch.optim.SGD([sgd_model.bias], lr=0.1, momentum=0.9)
    for _ in range(2):
        _step(lars_model, lars)
        _step(sgd_model, sgd)
        assert torch.allclose(lars_model.bias, sgd_model.bias) == exclude_1d


def test_2d_params_are_always_adapted():
    lars_model, sgd_model = _model(), _model()
    _step(lars_model, LARS(lars_model.parameters(), lr=0.1, momentum=0.9, weight_decay=0.0))
    _step(sgd_model, torch.optim.SGD(sgd_model.parameters(), lr=0.1, momentum=0.9))
    assert not torch.allclose(lars_model.weight, sgd_model.weight)


def test_nesterov_without_adaptation_matches_torch_sgd():
    torch.manual_seed(0)
    lars_params = [nn.Parameter(torch.randn(5)), nn.Parameter(torch.randn(3))]
    sgd_params = [nn.Parameter(p.detach().clone()) for p in lars_params]
    lars = LARS(lars_params, lr=0.1, momentum=0.9, weight_decay=0.0, exclude_1d=True, nesterov=True)
    sgd = torch.optim.SGD(sgd_params, lr=0.1, momentum=0.9, nesterov=True)
    targets = [torch.randn(5), torch.randn(3)]
    for _ in range(3):
        for params, opt in ((lars_params, lars), (sgd_params, sgd)):
            opt.zero_grad()
            sum(((p - t) ** 4).sum() for p, t in zip(params, targets, strict=True)).backward()
            opt.step()
        for a, b in zip(lars_params, sgd_params, strict=True):
            torch.testing.assert_close(a, b)
    assert not torch.allclose(lars_params[0], targets[0])  # the trajectory actually moved


def test_param_group_overrides_weight_decay():
    model = _model()
    opt = LARS([{"params": [model.weight], "weight_decay": 0.0}, {"params": [model.bias]}], weight_decay=0.5)
    assert [g["weight_decay"] for g in opt.param_groups] == [0.0, 0.5]


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"lr": -0.1}, r"lr=-0\.1"),
        ({"momentum": 1.0}, r"momentum=1\.0"),
        ({"momentum": -0.5}, r"momentum=-0\.5"),
        ({"weight_decay": -1e-3}, r"weight_decay=-0\.001"),
        ({"trust_coefficient": 0.0}, r"trust_coefficient=0\.0"),
    ],
)
def test_bad_arguments_raise_naming_the_argument(kwargs, match):
    with pytest.raises(ValueError, match=match):
        LARS(_model().parameters(), **kwargs)


def test_state_dict_round_trip_continues_identically():
    model = _model()
    opt = LARS(model.parameters(), lr=0.3, momentum=0.9, weight_decay=1e-2, trust_coefficient=0.01)
    for _ in range(2):
        _step(model, opt)
    copy = _model()
    copy.load_state_dict(model.state_dict())
    fresh = LARS(copy.parameters())
    # Through bytes, as a checkpoint would: a live state_dict shares its momentum buffers with ``opt``.
    saved = io.BytesIO()
    torch.save(opt.state_dict(), saved)
    saved.seek(0)
    fresh.load_state_dict(torch.load(saved))
    assert fresh.param_groups[0]["weight_decay"] == 1e-2
    _step(model, opt)
    _step(copy, fresh)
    for a, b in zip(model.parameters(), copy.parameters(), strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=0)


def test_zero_weight_takes_the_unscaled_step():
    # A zero-initialised layer would otherwise get trust 0 and never move.
    weight = nn.Parameter(torch.zeros(2, 3))
    opt = LARS([weight], lr=0.1, momentum=0.0, weight_decay=0.0)
    weight.grad = torch.ones(2, 3)
    opt.step()
    torch.testing.assert_close(weight.detach(), torch.full((2, 3), -0.1))
