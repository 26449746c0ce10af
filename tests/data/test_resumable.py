import torch
from torch.utils.data import Dataset, TensorDataset

from lit_mlcourse.data.resumable import ResumableLoader, SeededSamples, sample_seed, training_loader


class NoisyIndex(Dataset):
    """Sample i is (i, a draw from the global RNG): what a random augmentation does."""

    def __len__(self) -> int:
        return 20

    def __getitem__(self, index: int):
        return torch.tensor(index), torch.rand(())


def epoch(loader: ResumableLoader, number: int) -> list[list[int]]:
    loader.sampler.set_epoch(number)
    return [batch[0].tolist() for batch in loader]


def test_the_order_is_a_function_of_seed_and_epoch_and_a_restored_loader_continues_it():
    loader = training_loader(NoisyIndex(), 4, 0, trainer=None)
    first, second = epoch(loader, 0), epoch(loader, 1)
    assert sorted(index for batch in first for index in batch) == list(range(20)) and first != second
    # at an epoch boundary: the next epoch's order, not epoch 0's again (Lightning's replay)
    restored = training_loader(NoisyIndex(), 4, 0, trainer=None)
    restored.load_state_dict({"epoch": 0, "batches": 5, "epoch_done": True})
    assert [batch[0].tolist() for batch in restored] == second
    # mid-epoch: the batches not yet trained, then the following epochs as usual
    restored = training_loader(NoisyIndex(), 4, 0, trainer=None)
    restored.load_state_dict({"epoch": 1, "batches": 2, "epoch_done": False})
    assert [batch[0].tolist() for batch in restored] == second[2:]
    assert epoch(restored, 2) == epoch(loader, 2)


def test_augmentation_draws_depend_on_seed_epoch_and_index_only():
    def draws(workers: int, number: int) -> dict[int, float]:
        loader = training_loader(NoisyIndex(), 4, workers, trainer=None)
        loader.sampler.set_epoch(number)
        return {int(i): float(noise) for indices, noises in loader for i, noise in zip(indices, noises, strict=True)}

    assert draws(0, 3) == draws(2, 3)  # the same in the main process and in 2 workers
    assert draws(0, 3) != draws(0, 4)  # another epoch, other draws
    values = list(draws(0, 3).values())
    assert len(set(values)) == len(values)  # no two samples share a stream


def test_seeded_samples_leave_the_global_rng_alone():
    dataset = SeededSamples(NoisyIndex())
    before = torch.get_rng_state()
    first = dataset[(3, sample_seed(0, 0, 3))]
    assert torch.equal(torch.get_rng_state(), before)
    assert first[1] == dataset[(3, sample_seed(0, 0, 3))][1] != dataset[(3, sample_seed(0, 1, 3))][1]


def test_under_ddp_each_process_gets_its_own_shard():
    class FakeTrainer:
        def __init__(self, rank):
            self.distributed_sampler_kwargs = {"num_replicas": 2, "rank": rank}

    data = TensorDataset(torch.arange(10))
    shards = [[i for batch in training_loader(data, 2, 0, FakeTrainer(r)) for i in batch[0].tolist()] for r in (0, 1)]
    assert sorted(shards[0] + shards[1]) == list(range(10)) and len(shards[0]) == len(shards[1]) == 5
