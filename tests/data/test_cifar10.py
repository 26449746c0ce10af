import pickle

import numpy as np
import pytest
import torch
from cifar_fixtures import write_cifar_folder
from scipy.stats import chisquare

from lit_mlcourse.data import CIFAR10DataModule
from lit_mlcourse.data.cifar10 import _TransformedImages
from lit_mlcourse.data.transforms import BatchAugmentation, cutout, per_sample_pipeline
from lit_mlcourse.downloads import OfflineError
from lit_mlcourse.errors import ConfigValueError, DataFileNotFoundError, DataFormatError


@pytest.fixture(scope="module")
def cifar(tmp_path_factory):
    data_dir = tmp_path_factory.mktemp("cifar")
    return data_dir, write_cifar_folder(data_dir, per_batch=40)


def make(cifar, **options) -> CIFAR10DataModule:
    data_dir, checksums = cifar
    options = {"val_size": 40, "batch_size": 16, "checksums": checksums, **options}
    return CIFAR10DataModule(str(data_dir), **options)


def batches(dm: CIFAR10DataModule, split: str) -> list:
    loader = getattr(dm, f"{split}_dataloader")()
    return [dm.on_after_batch_transfer(batch, 0) for batch in loader]


def test_reads_the_pickled_batches_into_a_seeded_split(cifar):
    dm = make(cifar)
    dm.setup("fit")
    train_images, train_labels = dm.splits.host["train"]
    val_images, _ = dm.splits.host["val"]
    test_images, test_labels = dm.splits.host["test"]
    assert train_images.shape == (160, 3, 32, 32) and train_images.dtype == torch.uint8
    assert val_images.shape == (40, 3, 32, 32) and test_images.shape == (40, 3, 32, 32)
    assert test_labels.tolist() == [index % 10 for index in range(40)]
    # The split is a permutation of the 200 training images, fixed by split_seed.
    again = make(cifar)
    again.setup("fit")
    assert torch.equal(again.splits.host["val"][0], val_images)
    other = make(cifar, split_seed=1)
    other.setup("fit")
    assert not torch.equal(other.splits.host["val"][0], val_images)
    assert dm.class_names[0] == "airplane" and dm.num_classes == 10 and dm.image_shape == (3, 32, 32)
    assert len(train_labels) == 160


@pytest.mark.parametrize("data_path", ["device", "classic"])
def test_both_paths_give_normalized_float_batches(cifar, data_path):
    dm = make(cifar, data_path=data_path)
    dm.setup("fit")
    x, y = batches(dm, "train")[0]
    assert x.shape == (16, 3, 32, 32) and x.dtype == torch.float32 and y.dtype == torch.long
    # Validation images are not augmented: exactly (pixel / 255 - mean) / std.
    val_x, val_y = batches(dm, "val")[0]
    images, labels = dm.splits.host["val"]
    mean = torch.tensor([0.4914, 0.4822, 0.4465])[:, None, None]
    std = torch.tensor([0.2470, 0.2435, 0.2616])[:, None, None]
    torch.testing.assert_close(val_x, (images[:16].float() / 255 - mean) / std)
    assert torch.equal(val_y, labels[:16])
    predicted = batches(dm, "predict")[0]
    assert (predicted[0] if isinstance(predicted, list) else predicted).shape == (16, 3, 32, 32)


def coordinate_images(count: int) -> torch.Tensor:
    """Channel 0 holds row + 1, channel 1 column + 1: an augmented copy reveals its crop and flip."""
    image = torch.zeros(3, 32, 32, dtype=torch.uint8)
    image[0] = torch.arange(1, 33)[:, None]
    image[1] = torch.arange(1, 33)[None, :]
    return image.expand(count, 3, 32, 32).contiguous()


def offsets_and_flips(augmented: torch.Tensor, padding: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    pixels = (augmented * 255).round().long()  # (N, 3, 32, 32), normalization is the identity here
    rows = pixels[:, 0, 16, 16] - 17 + padding
    flipped = pixels[:, 1, 16, 15] > pixels[:, 1, 16, 16]
    cols = torch.where(flipped, pixels[:, 1, 16, 16] - 16 + padding, pixels[:, 1, 16, 16] - 17 + padding)
    return rows.numpy(), cols.numpy(), flipped.numpy()


def test_device_and_classic_augmentation_draw_the_same_distribution():
    torch.manual_seed(0)
    count, padding = 3000, 4
    images = coordinate_images(count)
    identity = ((0.0, 0.0, 0.0), (1.0, 1.0, 1.0))
    on_device = BatchAugmentation(*identity, padding=padding, flip=True)(images)
    pipeline = per_sample_pipeline(*identity, 32, padding=padding, flip=True)
    dataset = _TransformedImages(images, torch.zeros(count, dtype=torch.long), pipeline)
    per_sample = torch.stack([dataset[index][0] for index in range(count)])
    for augmented in (on_device, per_sample):
        rows, cols, flipped = offsets_and_flips(augmented, padding)
        for offsets in (rows, cols):
            counts = np.bincount(offsets, minlength=2 * padding + 1)
            assert len(counts) == 2 * padding + 1  # offsets in 0 .. 2 * padding, nothing else
            assert chisquare(counts).pvalue > 1e-3, counts  # uniform
        assert abs(flipped.mean() - 0.5) < 4 * (0.25 / count) ** 0.5


def test_cutout_zeroes_a_square_clipped_at_the_border():
    torch.manual_seed(0)
    out = cutout(torch.ones(500, 3, 32, 32), 8)
    zeroed = (out[:, 0] == 0).sum((1, 2))
    assert zeroed.max() == 64 and zeroed.min() >= 16  # whole square inside, or a corner of it (4 x 4)
    assert torch.equal(out[:, 0] == 0, out[:, 2] == 0)  # every channel of the square


def test_color_jitter_keeps_images_finite_and_changes_them():
    torch.manual_seed(0)
    images = torch.randint(0, 256, (8, 3, 32, 32), dtype=torch.uint8)
    plain = BatchAugmentation((0.5,) * 3, (0.25,) * 3)(images)
    jittered = BatchAugmentation((0.5,) * 3, (0.25,) * 3, color_jitter=0.4)(images)
    assert torch.isfinite(jittered).all() and not torch.allclose(plain, jittered)
    assert jittered.min() >= -2.0 - 1e-6 and jittered.max() <= 2.0 + 1e-6  # stays within [0, 1] before normalizing


def test_a_tampered_batch_is_refused_before_unpickling(tmp_path):
    checksums = write_cifar_folder(tmp_path, per_batch=20)
    path = tmp_path / "cifar-10-batches-py" / "data_batch_3"
    content = bytearray(path.read_bytes())
    content[500] ^= 0xFF
    path.write_bytes(bytes(content))
    dm = CIFAR10DataModule(str(tmp_path), val_size=10, checksums=checksums)
    with pytest.raises(DataFormatError, match=r"data_batch_3 failed its integrity check") as error:
        dm.setup("fit")
    assert "extract cifar-10-python.tar.gz again" in str(error.value)


def test_a_pickle_that_would_run_code_is_refused_even_with_a_matching_checksum(tmp_path):
    checksums = write_cifar_folder(tmp_path, per_batch=20)
    sentinel = tmp_path / "pwned"

    class Payload:
        def __reduce__(self):
            return (open, (str(sentinel), "w"))

    path = tmp_path / "cifar-10-batches-py" / "test_batch"
    path.write_bytes(pickle.dumps({"data": Payload(), "labels": []}, protocol=2))
    import hashlib

    checksums["test_batch"] = hashlib.md5(path.read_bytes()).hexdigest()
    dm = CIFAR10DataModule(str(tmp_path), val_size=10, checksums=checksums)
    with pytest.raises(
        DataFormatError, match=r"test_batch is not a CIFAR-10 batch: refusing to load (io|builtins)\.open"
    ):
        dm.setup("fit")
    assert not sentinel.exists()


def test_offline_without_the_folder_fails_at_once_naming_it(tmp_path, monkeypatch):
    monkeypatch.setenv("LIT_MLCOURSE_OFFLINE", "1")
    with pytest.raises(OfflineError, match=r"CIFAR-10 is not in .*nothere/cifar-10-batches-py") as error:
        CIFAR10DataModule(str(tmp_path / "nothere"))
    assert "extract https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz into" in str(error.value)


def test_no_network_is_detected_by_a_failed_connection(tmp_path, monkeypatch):
    monkeypatch.delenv("LIT_MLCOURSE_OFFLINE", raising=False)

    def unreachable(*args, **kwargs):
        raise OSError("Network is unreachable")

    monkeypatch.setattr("socket.create_connection", unreachable)
    with pytest.raises(OfflineError, match=r"cannot be downloaded from .* \(offline\)"):
        CIFAR10DataModule(str(tmp_path))


def test_a_connection_that_never_answers_is_given_up_at_the_timeout(tmp_path, monkeypatch):
    import threading

    monkeypatch.delenv("LIT_MLCOURSE_OFFLINE", raising=False)
    monkeypatch.setattr("lit_mlcourse.downloads.CONNECT_TIMEOUT", 0.2)
    released = threading.Event()

    def hang(*args, **kwargs):  # a name lookup without a DNS server: no timeout of its own
        released.wait(60)
        raise OSError("no answer")

    monkeypatch.setattr("socket.create_connection", hang)
    try:  # without the bound, this would wait for the minute (pytest-timeout stops it sooner)
        with pytest.raises(OfflineError, match=r"cannot be downloaded from .* \(offline\)"):
            CIFAR10DataModule(str(tmp_path))
    finally:
        released.set()


def test_a_downloaded_archive_that_fails_its_md5_is_not_extracted(tmp_path, monkeypatch):
    import io
    import tarfile

    import torchvision.datasets.utils as torchvision_download

    from lit_mlcourse.data import cifar10_files

    def serve_tampered(url, path):  # what a compromised mirror could send: a member that climbs out
        payload = b"written outside the data folder"
        member = tarfile.TarInfo("../evil")
        member.size = len(payload)
        with tarfile.open(path, "w:gz") as archive:
            archive.addfile(member, io.BytesIO(payload))

    # Online, as far as the download is concerned; the md5 check is torchvision's own, unpatched.
    monkeypatch.setattr(cifar10_files, "require_online", lambda *args: None)
    monkeypatch.setattr(torchvision_download, "_is_remote_location_available", lambda: False)
    monkeypatch.setattr(torchvision_download, "_get_redirect_url", lambda url, max_hops: url)
    monkeypatch.setattr(torchvision_download, "_urlretrieve", serve_tampered)
    data_dir = tmp_path / "data"
    with pytest.raises(DataFormatError, match=r"cifar-10-python.tar.gz, downloaded from .* failed its integrity check"):
        cifar10_files.ensure_present(data_dir, download=True, checksums=cifar10_files.STANDARD_MD5)
    assert not (tmp_path / "evil").exists() and not (data_dir / "cifar-10-batches-py").exists()


def test_download_false_names_the_missing_files(tmp_path):
    with pytest.raises(DataFileNotFoundError, match=r"not in .*cifar-10-batches-py"):
        CIFAR10DataModule(str(tmp_path), download=False)


def test_bad_options_name_the_value(cifar):
    with pytest.raises(ConfigValueError, match=r"data.val_size=500 must be below the 200 training images"):
        make(cifar, val_size=500).setup("fit")
    with pytest.raises(ConfigValueError, match=r"differs in data_batch_9"):
        make(cifar, checksums={**cifar[1], "data_batch_9": "0" * 32})


@pytest.mark.parametrize("data_path", ["device", "classic"])
def test_normalize_false_serves_images_in_0_1(cifar, data_path):
    dm = make(cifar, data_path=data_path, normalize=False, padding=0, flip=False)
    dm.setup("fit")
    images, _ = batches(dm, "val")[0]
    expected = dm.splits.host["val"][0][:16].float() / 255
    torch.testing.assert_close(images, expected)
