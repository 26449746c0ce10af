"""RELIABILITY row 25: NT-Xent with negatives gathered from 2 gloo processes (Lightning's all_gather, as SimCLR's
training_step calls it) has the loss and the gradients of one process on the concatenated batch; gathered without
their gradients (sync_grads=False) it does not, which shows the comparison can fail."""

from __future__ import annotations

import os

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from lit_mlcourse.losses import nt_xent

N, D, WORLD, TEMPERATURE = 6, 5, 2, 0.3


def views() -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(0)
    return torch.randn(WORLD * N, D, generator=generator, dtype=torch.float64), torch.randn(
        WORLD * N, D, generator=generator, dtype=torch.float64
    )


def one_process() -> tuple[float, torch.Tensor, torch.Tensor]:
    z1, z2 = (z.clone().requires_grad_() for z in views())
    loss = nt_xent(z1, z2, TEMPERATURE)
    loss.backward()
    return loss.item(), z1.grad, z2.grad


def worker(rank: int, init_file: str, results) -> None:
    from lightning.fabric.utilities.distributed import _all_gather_ddp_if_available

    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=WORLD)
    try:
        for sync_grads in (True, False):
            z1, z2 = (z[rank * N : (rank + 1) * N].clone().requires_grad_() for z in views())

            def gather(t: torch.Tensor, sync_grads=sync_grads) -> torch.Tensor:  # SimCLR.training_step's call
                return _all_gather_ddp_if_available(t, sync_grads=sync_grads).flatten(0, 1)

            loss = nt_xent(z1, z2, TEMPERATURE, gather, rank)
            loss.backward()
            # DDP averages gradients (and the logged loss) over processes
            mean_loss = loss.detach().clone()
            dist.all_reduce(mean_loss)
            results[rank, sync_grads] = (mean_loss.item() / WORLD, z1.grad / WORLD, z2.grad / WORLD)
    finally:
        dist.destroy_process_group()


def two_processes(tmp_path) -> dict[bool, tuple[float, torch.Tensor, torch.Tensor]]:
    """Per sync_grads: the mean loss and the gradients of both processes' views, in the global order."""
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    with mp.Manager() as manager:
        results = manager.dict()
        mp.spawn(worker, args=(str(tmp_path / "init"), results), nprocs=WORLD, join=True)
        results = dict(results)
    combined = {}
    for sync_grads in (True, False):
        by_rank = [results[rank, sync_grads] for rank in range(WORLD)]
        assert by_rank[0][0] == pytest.approx(by_rank[1][0])  # both processes report the same mean loss
        combined[sync_grads] = by_rank[0][0], torch.cat([r[1] for r in by_rank]), torch.cat([r[2] for r in by_rank])
    return combined


def test_gathered_negatives_give_the_loss_and_gradients_of_one_process_and_only_with_their_gradients(tmp_path):
    loss, grad1, grad2 = one_process()
    results = two_processes(tmp_path)
    synced, unsynced = results[True], results[False]
    assert synced[0] == pytest.approx(loss, rel=1e-12)
    torch.testing.assert_close(synced[1], grad1, rtol=1e-9, atol=1e-12)
    torch.testing.assert_close(synced[2], grad2, rtol=1e-9, atol=1e-12)
    assert unsynced[0] == pytest.approx(loss, rel=1e-12)  # the same loss value ...
    assert not torch.allclose(unsynced[1], grad1, rtol=1e-3)  # ... but the negatives' gradients are missing
