import math
import os
import socket

import pytest
import torch
import torch.distributed as dist
import torch.distributed.nn.functional
import torch.multiprocessing as mp

from lit_mlcourse.losses import nt_xent


def naive_nt_xent(z1: torch.Tensor, z2: torch.Tensor, temperature: float) -> torch.Tensor:
    """The paper's definition, one anchor at a time."""
    views = torch.nn.functional.normalize(torch.cat([z1, z2]), dim=1)
    n = len(z1)
    total = 0.0
    for i in range(2 * n):
        positive = (i + n) % (2 * n)
        numerator = math.exp(float(views[i] @ views[positive]) / temperature)
        denominator = sum(math.exp(float(views[i] @ views[k]) / temperature) for k in range(2 * n) if k != i)
        total += -math.log(numerator / denominator)
    return torch.tensor(total / (2 * n))


def test_matches_the_naive_definition():
    torch.manual_seed(0)
    z1, z2 = torch.randn(6, 4, dtype=torch.float64), torch.randn(6, 4, dtype=torch.float64)
    for temperature in (0.1, 0.5, 1.0):
        torch.testing.assert_close(nt_xent(z1, z2, temperature), naive_nt_xent(z1, z2, temperature).double())


def test_symmetric_in_the_views_and_invariant_to_the_image_order():
    torch.manual_seed(1)
    z1, z2 = torch.randn(8, 5), torch.randn(8, 5)
    order = torch.randperm(8)
    torch.testing.assert_close(nt_xent(z1, z2), nt_xent(z2, z1))
    torch.testing.assert_close(nt_xent(z1, z2), nt_xent(z1[order], z2[order]))


def test_analytic_value_for_identical_views_of_orthogonal_images():
    # Two images, both views equal, the images orthogonal: each anchor sees its positive at similarity 1
    # and two negatives at 0, so the loss is -log(e^(1/t) / (e^(1/t) + 2)) = log(1 + 2 e^(-1/t)).
    z = torch.eye(2, 3)
    for temperature in (0.2, 0.5, 1.0):
        expected = math.log(1 + 2 * math.exp(-1 / temperature))
        assert nt_xent(z, z.clone(), temperature).item() == pytest.approx(expected, rel=1e-6)


def test_falls_under_a_few_sgd_steps_on_random_embeddings():
    torch.manual_seed(2)
    z1 = torch.randn(16, 8, requires_grad=True)
    z2 = torch.randn(16, 8, requires_grad=True)
    optimizer = torch.optim.SGD([z1, z2], lr=0.5)
    first = nt_xent(z1, z2).item()
    for _ in range(30):
        optimizer.zero_grad()
        nt_xent(z1, z2).backward()
        optimizer.step()
    # From 3.40 towards the floor of identical views (1.80 for these embeddings): 2.42 after 30 steps.
    assert nt_xent(z1, z2).item() < first - 0.75


def test_temperature_must_be_positive():
    with pytest.raises(ValueError, match=r"temperature=0 must be > 0"):
        nt_xent(torch.randn(2, 3), torch.randn(2, 3), 0)


# Under DDP: two gloo processes, each holding half of the batch.

WORLD = 2


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _gather_with_grads(tensor: torch.Tensor) -> torch.Tensor:
    return torch.cat(torch.distributed.nn.functional.all_gather(tensor))


def _gather_without_grads(tensor: torch.Tensor) -> torch.Tensor:
    # The bug solo-learn once shipped: other processes' embeddings as constants. Own rows keep gradients.
    parts = [torch.empty_like(tensor) for _ in range(dist.get_world_size())]
    dist.all_gather(parts, tensor.detach())
    parts[dist.get_rank()] = tensor
    return torch.cat(parts)


def _worker(rank: int, port: int, z1: torch.Tensor, z2: torch.Tensor, sync: bool, results: dict) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=WORLD)
    n = len(z1) // WORLD
    local1 = z1[rank * n : (rank + 1) * n].clone().requires_grad_(True)
    local2 = z2[rank * n : (rank + 1) * n].clone().requires_grad_(True)
    gather = _gather_with_grads if sync else _gather_without_grads
    loss = nt_xent(local1, local2, 0.5, gather=gather, rank=rank)
    loss.backward()
    mean_loss = loss.detach().clone()
    dist.all_reduce(mean_loss)
    # DDP averages the parameter gradients over processes: the same division applies to the inputs'.
    results[rank] = (mean_loss.item() / WORLD, local1.grad / WORLD, local2.grad / WORLD)
    dist.destroy_process_group()


def _two_processes(z1: torch.Tensor, z2: torch.Tensor, sync: bool) -> tuple[float, torch.Tensor, torch.Tensor]:
    with mp.Manager() as manager:
        results = manager.dict()
        mp.spawn(_worker, args=(_free_port(), z1, z2, sync, results), nprocs=WORLD, join=True)
        ordered = [results[rank] for rank in range(WORLD)]
    loss = ordered[0][0]
    return loss, torch.cat([item[1] for item in ordered]), torch.cat([item[2] for item in ordered])


@pytest.fixture(scope="module")
def single_process():
    torch.manual_seed(3)
    z1, z2 = torch.randn(8, 6, dtype=torch.float64), torch.randn(8, 6, dtype=torch.float64)
    a, b = z1.clone().requires_grad_(True), z2.clone().requires_grad_(True)
    loss = nt_xent(a, b, 0.5)
    loss.backward()
    return z1, z2, loss.item(), a.grad, b.grad


def test_under_ddp_loss_and_gradients_equal_one_process_on_the_whole_batch(single_process):
    z1, z2, loss, grad1, grad2 = single_process
    ddp_loss, ddp_grad1, ddp_grad2 = _two_processes(z1, z2, sync=True)
    assert ddp_loss == pytest.approx(loss, abs=1e-6)
    torch.testing.assert_close(ddp_grad1, grad1, atol=1e-6, rtol=0)
    torch.testing.assert_close(ddp_grad2, grad2, atol=1e-6, rtol=0)


def test_without_gradient_sync_the_ddp_gradients_differ(single_process):
    z1, z2, loss, grad1, _ = single_process
    ddp_loss, ddp_grad1, _ = _two_processes(z1, z2, sync=False)
    assert ddp_loss == pytest.approx(loss, abs=1e-6)  # the forward pass cannot tell the difference...
    assert (ddp_grad1 - grad1).abs().max() > 1e-3  # ...the gradients can: this test can fail
