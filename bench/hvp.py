"""Hessian-vector products two ways, for lit_mlcourse.curvature's choice: reverse over reverse (vjp of the gradient)
against forward over reverse (jvp of the gradient), on the quick start's CNN and the PM2.5 MLP, one batch each.

    python bench/hvp.py [--threads 1] [--repeats 20]
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
from torch.func import functional_call, grad, jvp, vjp

from lit_mlcourse.nets import MLP, SmallCNN


def seconds_per_call(call, repeats: int) -> float:
    call()  # warm-up
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        call()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--repeats", type=int, default=20)
    options = parser.parse_args()
    torch.set_num_threads(options.threads)
    torch.manual_seed(0)
    cases = {
        "quick start SmallCNN [32, 64], batch 64 of 1x8x8": (
            SmallCNN(10, 1, widths=[32, 64], dropout=0.1),
            torch.randn(64, 1, 8, 8),
            torch.randint(0, 10, (64,)),
        ),
        "PM2.5 MLP [64], batch 64 of 81 inputs": (MLP(81, 1, [64]), torch.randn(64, 81), torch.randn(64, 1)),
    }
    print(f"threads {options.threads}, median of {options.repeats}")
    for name, (net, x, y) in cases.items():
        net.eval()
        params = {key: value.detach() for key, value in net.named_parameters()}
        tangent = {key: torch.randn_like(value) for key, value in params.items()}
        criterion = torch.nn.functional.cross_entropy if y.dtype == torch.long else torch.nn.functional.mse_loss

        def loss(p):
            return criterion(functional_call(net, p, (x,)), y)  # noqa: B023

        reverse = seconds_per_call(lambda: vjp(grad(loss), params)[1](tangent), options.repeats)  # noqa: B023
        try:
            forward = seconds_per_call(lambda: jvp(grad(loss), (params,), (tangent,)), options.repeats)  # noqa: B023
            by_jvp = f"{1000 * forward:.2f} ms (jvp / vjp {forward / reverse:.2f})"
        except RuntimeError as error:  # forward-mode AD has gaps that reverse mode has not
            by_jvp = f"fails ({str(error).splitlines()[0][:80]})"
        plain = seconds_per_call(lambda: loss(params), options.repeats)  # noqa: B023
        count = sum(value.numel() for value in params.values())
        print(f"{name} ({count} weights): loss {1000 * plain:.2f} ms, H v by vjp of grad {1000 * reverse:.2f} ms, "
              f"by jvp of grad {by_jvp}")  # fmt: skip


if __name__ == "__main__":
    main()
