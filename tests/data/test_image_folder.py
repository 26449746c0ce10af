import io
import os
import re
import shutil
from pathlib import Path

import pytest
import torch
from image_fixtures import (
    BAD_KINDS,
    bomb_png,
    exif_rotated_jpeg,
    make_classes,
    make_splits,
    odd_mode_files,
    save,
    write_bad,
)
from jsonargparse import ArgumentParser
from PIL import Image

from lit_mlcourse.data.image_files import load_image
from lit_mlcourse.data.image_folder import IMAGENET_MEAN, IMAGENET_STD, ImageFolderDataModule
from lit_mlcourse.errors import ConfigValueError, DataFileNotFoundError, DataFormatError


def module(root: Path, **kwargs) -> ImageFolderDataModule:
    """A DataModule that decodes in this process: tiny images, no worker start-up."""
    return ImageFolderDataModule(str(root), **{"image_size": 8, "batch_size": 4, "num_workers": 0, **kwargs})


def fitted(root: Path, **kwargs) -> ImageFolderDataModule:
    dm = module(root, **kwargs)
    dm.setup("fit")
    return dm


# Layouts and the facts the CLI links before setup


def test_split_layout_facts_are_known_before_setup(tmp_path):
    make_splits(tmp_path, {"wasps": 2, "ants": 3, "bees": 2})
    dm = module(tmp_path, image_size=12)
    assert dm.class_names == ["ants", "bees", "wasps"]  # sorted folder names: a stable class index
    assert dm.num_classes == 3 and dm.image_shape == (3, 12, 12)
    assert dm.resize == round(12 * 8 / 7) and not dm.datasets
    dm.setup("fit")
    assert [len(dm.datasets[split]) for split in ("train", "val")] == [7, 7]
    assert sorted(dm.datasets["train"].labels) == [0, 0, 0, 1, 1, 2, 2]


def test_flat_layout_draws_a_stratified_split_fixed_by_the_seed(tmp_path):
    make_classes(tmp_path, {"cats": 20, "dogs": 10})
    first, second, other = (fitted(tmp_path, val_fraction=0.2, split_seed=seed) for seed in (0, 0, 1))
    val = first.datasets["val"]
    assert len(val) == 6 and sorted(val.labels) == [0, 0, 0, 0, 1, 1]  # 20 % of each class
    assert val.paths == second.datasets["val"].paths and val.paths != other.datasets["val"].paths
    train = first.datasets["train"].paths
    assert len(train) == 24 and not set(train) & set(val.paths)


def test_a_class_with_one_image_cannot_be_split(tmp_path):
    make_classes(tmp_path, {"cats": 5, "dogs": 1})
    with pytest.raises(DataFormatError, match=r"dogs has 1 image.*at least 2 per class"):
        fitted(tmp_path)


def test_too_few_images_for_every_class_in_val(tmp_path):
    make_classes(tmp_path, {name: 2 for name in "abcdef"})
    with pytest.raises(ConfigValueError, match=r"val_fraction=0.1 cannot split the 12 images"):
        fitted(tmp_path, val_fraction=0.1)


def test_the_cli_parser_builds_it(tmp_path):
    make_splits(tmp_path, {"a": 1, "b": 1})
    parser = ArgumentParser(exit_on_error=False)
    parser.add_class_arguments(ImageFolderDataModule, "data")
    config = parser.parse_args(["--data.root", str(tmp_path), "--data.augment", "flip", "--data.image_size", "32"])
    instantiate = getattr(parser, "instantiate", None) or parser.instantiate_classes  # renamed in jsonargparse 4.49
    dm = instantiate(config).data
    assert dm.hparams.augment == "flip" and dm.image_shape == (3, 32, 32) and dm.resize == 37
    assert all(type(side) is int for side in dm.image_shape)  # checkpoints hold it: no PositiveInt there
    with pytest.raises(Exception, match="augment"):
        parser.parse_args(["--data.root", str(tmp_path), "--data.augment", "rotate"])


# Batches


@pytest.mark.parametrize("augment", ["none", "flip", "standard"])
def test_batches_are_normalized_float_images_and_long_labels(tmp_path, augment):
    make_splits(tmp_path, {"a": 3, "b": 3})
    dm = fitted(tmp_path, augment=augment, image_size=10)
    for loader in (dm.train_dataloader(), dm.val_dataloader()):
        images, labels = next(iter(loader))
        assert images.shape == (4, 3, 10, 10) and images.dtype == torch.float32
        assert labels.dtype == torch.long and set(labels.tolist()) <= {0, 1}


def test_evaluation_crops_the_centre_and_normalizes_with_imagenet_statistics(tmp_path):
    for split in ("train", "val"):
        for name, color in (("a", (255, 0, 128)), ("b", (0, 255, 0))):
            save(tmp_path / split / name / "x.png", color, size=(30, 20))
    dm = fitted(tmp_path, image_size=16)
    assert dm.datasets["val"].images[0].shape == (3, 18, 27)  # shorter side 20 -> resize 18 at decode
    images, _ = next(iter(dm.val_dataloader()))
    expected = (torch.tensor([1.0, 0.0, 128 / 255]) - torch.tensor(IMAGENET_MEAN)) / torch.tensor(IMAGENET_STD)
    torch.testing.assert_close(images[0].mean((1, 2)), expected)
    assert images[0].std((1, 2)).max() < 1e-5


# Files: names, modes, links


def test_which_files_are_images(tmp_path, capsys):
    make_splits(tmp_path, {"a": 1, "b": 1})
    folder = tmp_path / "train" / "a"
    save(folder / "UPPER.JPG")
    save(folder / "deep" / "deeper" / "nested.jpeg")
    Image.new("RGB", (20, 16)).save(folder / "png_named.jpg", "PNG")  # the content decides how it is read
    (folder / ".DS_Store").write_bytes(b"\0\0\0\1Bud1")
    (folder / "._UPPER.JPG").write_bytes(b"\0\5\26\7")  # macOS AppleDouble companion
    (folder / "notes.txt").write_text("shot in 2023")
    dm = fitted(tmp_path)
    names = sorted(path.name for path in dm.datasets["train"].paths)
    assert names == ["UPPER.JPG", "a_00.png", "b_00.png", "nested.jpeg", "png_named.jpg"]
    out = capsys.readouterr().out
    assert "ignored 1 entry" in out and "notes.txt" in out and "DS_Store" not in out


def test_odd_modes_become_three_channel_uint8(tmp_path):
    for kind, path in odd_mode_files(tmp_path).items():
        image = load_image(path, 16)
        assert image.shape == (3, 16, 20) and image.dtype == torch.uint8, kind
    gray16 = load_image(tmp_path / "gray16.png", 16).float()
    assert 100 < gray16.mean() < 150  # 16-bit samples scaled to 8 bits, not clipped to white
    assert load_image(tmp_path / "cmyk.jpg", 16).float().mean((1, 2)).tolist()[0] > 200  # CMYK red stays red


def test_exif_orientation_is_applied(tmp_path):
    assert load_image(exif_rotated_jpeg(tmp_path / "rotated.jpg"), 16).shape == (3, 20, 16)


def test_a_link_to_a_file_outside_root_is_refused(tmp_path):
    root = make_splits(tmp_path / "data", {"a": 1, "b": 1})
    secret = save(tmp_path / "secret.png")
    (root / "train" / "a" / "x.png").symlink_to(secret)
    with pytest.raises(DataFormatError, match=r"a/x\.png is a link to .*secret\.png, outside"):
        fitted(root)


def test_a_link_inside_root_is_read_and_a_folder_link_cycle_is_not_followed(tmp_path, capsys):
    root = make_splits(tmp_path, {"a": 2, "b": 1})
    (root / "train" / "b" / "copy.png").symlink_to(root / "train" / "a" / "a_00.png")
    (root / "train" / "a" / "loop").symlink_to("..", target_is_directory=True)
    (root / "train" / "a" / "self").symlink_to(root / "train" / "a", target_is_directory=True)
    dm = fitted(root)
    assert len(dm.datasets["train"]) == 4
    assert "link to a folder, not followed" in capsys.readouterr().out


def test_a_linked_class_folder_is_refused(tmp_path):
    root = make_splits(tmp_path / "data", {"a": 1})
    make_classes(tmp_path / "elsewhere", {"b": 1})
    (root / "train" / "b").symlink_to(tmp_path / "elsewhere" / "b", target_is_directory=True)
    with pytest.raises(DataFormatError, match=r"train/b is a link to a folder"):
        module(root)


# Bad files


@pytest.mark.parametrize("kind", sorted(BAD_KINDS))
def test_a_bad_file_is_an_error_naming_path_class_and_index(tmp_path, kind):
    root = make_splits(tmp_path, {"a": 2, "b": 2})
    bad = write_bad(root / "train" / "b" / "b_01.jpg", kind)  # sorted after b_00.png: train index 3
    with pytest.raises(DataFormatError) as error:
        fitted(root)
    message = str(error.value)
    for part in (str(bad), "class 'b', train index 3", BAD_KINDS[kind], "--data.on_bad_file skip"):
        assert part in message


def test_without_the_cache_a_bad_file_fails_when_it_is_read(tmp_path):
    root = make_splits(tmp_path, {"a": 2, "b": 2})
    write_bad(root / "val" / "a" / "a_00.png", "truncated")
    dm = fitted(root, cache=False)
    assert dm.datasets["val"].images is None and len(dm.datasets["val"]) == 4
    with pytest.raises(DataFormatError, match=r"a_00\.png \(class 'a', val index 0\).*truncated"):
        next(iter(dm.val_dataloader()))


@pytest.mark.parametrize(("cache", "workers"), [(True, 0), (False, 0), (True, 2)])
def test_skip_leaves_bad_files_out_and_lists_them_once(tmp_path, capsys, cache, workers):
    root = make_splits(tmp_path, {"a": 3, "b": 3})
    for index, kind in enumerate(sorted(BAD_KINDS)):
        write_bad(root / ("train" if index % 2 else "val") / "a" / f"bad_{kind}.jpg", kind)
    dm = fitted(root, on_bad_file="skip", cache=cache, num_workers=workers)
    assert len(dm.datasets["train"]) == len(dm.datasets["val"]) == 6  # the bad files alone are left out
    assert not any("bad_" in path.name for split in ("train", "val") for path in dm.datasets[split].paths)
    assert sum(len(labels) for _, labels in dm.train_dataloader()) == 6  # a full epoch, lengths consistent
    dm.setup("fit")  # Lightning calls setup again (e.g. on `trainer.fit` after a manual setup)
    out = capsys.readouterr().out
    assert out.count(f"Skipped {len(BAD_KINDS)} bad image files") == 1
    for kind, reason in BAD_KINDS.items():
        assert f"bad_{kind}.jpg" in out and reason in out


@pytest.mark.parametrize("policy", ["error", "skip"])
def test_a_decompression_bomb_is_raised_with_its_path(tmp_path, policy):
    root = make_splits(tmp_path, {"a": 1, "b": 1})
    bomb = bomb_png(root / "val" / "b" / "huge.png")
    with pytest.raises(Image.DecompressionBombError, match=rf"{re.escape(str(bomb))}.*exceeds limit"):
        fitted(root, on_bad_file=policy)


# Folder structure errors


def test_missing_root_names_the_path_and_the_layout(tmp_path):
    with pytest.raises(
        DataFileNotFoundError, match=rf"{re.escape(str(tmp_path / 'nope'))} is not a folder.*root/train/<class>"
    ):
        module(tmp_path / "nope")


def test_mismatched_class_folders_name_the_classes(tmp_path):
    make_classes(tmp_path / "train", {"ants": 1, "bees": 1})
    make_classes(tmp_path / "val", {"ants": 1, "wasps": 1})
    with pytest.raises(DataFormatError, match=r"val does not have .*missing: bees; extra: wasps"):
        module(tmp_path)


def test_an_empty_class_folder_is_named(tmp_path):
    make_splits(tmp_path, {"a": 1, "b": 1})
    (tmp_path / "val" / "b" / "b_00.png").unlink()
    with pytest.raises(DataFileNotFoundError, match=r"val/b has no image files"):
        fitted(tmp_path)


def test_train_without_val_is_an_error(tmp_path):
    make_classes(tmp_path / "train", {"a": 1})
    with pytest.raises(DataFileNotFoundError, match=r"has train/ but no val/"):
        module(tmp_path)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [({"resize": 6}, "resize=6 is smaller"), ({"min_scale": 0}, r"min_scale=0 must be in \(0, 1\]")],
)
def test_bad_settings(tmp_path, kwargs, message):
    make_splits(tmp_path, {"a": 1})
    with pytest.raises(ConfigValueError, match=message):
        module(tmp_path, **kwargs)


def test_a_checkpoint_of_other_classes_is_refused(tmp_path):
    make_splits(tmp_path, {"ants": 1, "bees": 1})
    dm = module(tmp_path)
    dm.load_state_dict(dm.state_dict())
    with pytest.raises(DataFormatError, match=r"added: bees.*removed: wasps"):
        dm.load_state_dict({"class_names": ["ants", "wasps"]})


# Test set and prediction


def test_the_test_folder_is_the_test_set(tmp_path):
    make_splits(tmp_path, {"a": 2, "b": 1}, splits=("train", "val", "test"))
    dm = module(tmp_path)
    assert dm.has_test_set
    dm.setup("test")
    images, labels = next(iter(dm.test_dataloader()))
    assert images.shape == (3, 3, 8, 8) and labels.tolist() == [0, 0, 1]
    dm.setup("predict")  # default: the test images
    assert [Path(path).relative_to(tmp_path).parts[0] for path in dm.predict_paths] == ["test"] * 3


def test_without_a_test_folder_testing_points_to_validate(tmp_path):
    make_splits(tmp_path, {"a": 1, "b": 1})
    dm = module(tmp_path)
    assert not dm.has_test_set
    for attempt in (lambda: dm.setup("test"), dm.test_dataloader):
        with pytest.raises(ConfigValueError, match="lit validate"):
            attempt()


def test_predict_dir_is_walked_in_sorted_order_and_yields_images_only(tmp_path):
    make_splits(tmp_path / "data", {"a": 1, "b": 1})
    folder = tmp_path / "new"
    for name in ("b.png", "a.jpg", "sub/c.png", "sub/deeper/d.png"):
        save(folder / name)
    (folder / "README").write_text("photos from the field trip")
    dm = module(tmp_path / "data", predict_dir=str(folder), batch_size=3)
    dm.setup("predict")
    assert [os.path.relpath(path, folder) for path in dm.predict_paths] == [
        "a.jpg",
        "b.png",
        "sub/c.png",
        "sub/deeper/d.png",
    ]
    batches = list(dm.predict_dataloader())
    assert [batch.shape for batch in batches] == [(3, 3, 8, 8), (1, 3, 8, 8)]


def test_predict_defaults_to_the_validation_images(tmp_path):
    make_splits(tmp_path / "split", {"a": 2, "b": 1})
    dm = module(tmp_path / "split")
    dm.setup("predict")
    assert dm.predict_paths == [
        str(tmp_path / "split" / "val" / name) for name in ("a/a_00.png", "a/a_01.png", "b/b_00.png")
    ]
    flat = make_classes(tmp_path / "flat", {"a": 5, "b": 5})
    dm = fitted(flat)
    dm.setup("predict")
    assert dm.predict_paths == [str(path) for path in dm.datasets["val"].paths]


def test_a_missing_predict_dir_is_named(tmp_path):
    make_splits(tmp_path, {"a": 1})
    with pytest.raises(DataFileNotFoundError, match=r"predict_dir .*nowhere"):
        module(tmp_path, predict_dir=str(tmp_path / "nowhere")).setup("predict")


# The real course data


def test_hymenoptera(real_data, tmp_path, capsys):
    dm = module(real_data / "hymenoptera_data", image_size=32, batch_size=8)
    assert dm.class_names == ["ants", "bees"] and dm.num_classes == 2 and not dm.has_test_set
    dm.setup("fit")
    assert len(dm.datasets["train"]) == 244 and len(dm.datasets["val"]) == 153
    assert "imageNotFound.gif" in capsys.readouterr().out  # the placeholder GIF is named, not trained on
    images, labels = next(iter(dm.train_dataloader()))
    assert images.shape == (8, 3, 32, 32) and labels.dtype == torch.long
    assert all(min(image.shape[1:]) == dm.resize for image in dm.datasets["val"].images)


def test_hymenoptera_copy_with_a_bad_file_skips_it(real_data, tmp_path):
    root = tmp_path / "hymenoptera"
    for name in sorted((real_data / "hymenoptera_data" / "val" / "bees").iterdir())[:3]:
        (root / "bees").mkdir(parents=True, exist_ok=True)
        shutil.copy(name, root / "bees" / name.name)
    make_classes(root, {"ants": 3})
    write_bad(root / "bees" / "zz.jpg", "truncated")
    dm = fitted(root, on_bad_file="skip", val_fraction=0.34)
    assert len(dm.datasets["train"]) + len(dm.datasets["val"]) == 6


def test_a_folder_larger_than_the_open_file_limit_decodes_in_workers(tmp_path):
    import resource

    make_splits(tmp_path, {"a": 560, "b": 560}, splits=("train",))
    make_splits(tmp_path, {"a": 2, "b": 2}, splits=("val",))
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(1024, hard), hard))
    try:  # each image held in worker shared memory would keep a file open: 1,120 > 1,024
        dm = ImageFolderDataModule(str(tmp_path), image_size=8, resize=8, num_workers=2)
        dm.setup("fit")
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
    assert len(dm.datasets["train"]) == 1120


def test_folds_partition_every_labelled_training_image(tmp_path):
    make_splits(tmp_path, {"ants": 6, "bees": 9})  # train/ and val/ pooled: 12 ants, 18 bees
    vals = []
    for fold in range(3):
        dm = ImageFolderDataModule(str(tmp_path), image_size=8, resize=8, num_workers=0, num_folds=3, fold=fold)
        dm.setup("fit")
        train, val = dm.datasets["train"], dm.datasets["val"]
        assert not set(train.paths) & set(val.paths) and len(train) + len(val) == 30
        assert sorted(val.labels) == [0] * 4 + [1] * 6  # stratified: a third of each class
        vals.append(set(val.paths))
    assert set.union(*vals) == set((tmp_path / "train").rglob("*.png")) | set((tmp_path / "val").rglob("*.png"))
    with pytest.raises(ConfigValueError, match=r"fold=3 is outside 0..2"):
        ImageFolderDataModule(str(tmp_path), num_folds=3, fold=3)


def test_a_bad_file_read_in_a_worker_is_named_without_the_worker_traceback(tmp_path):
    root = make_splits(tmp_path, {"a": 2, "b": 2})
    bad = write_bad(root / "train" / "b" / "b_01.jpg", "truncated")
    loader = fitted(root, cache=False, num_workers=2, augment="none", batch_size=2).train_dataloader()
    try:
        with pytest.raises(DataFormatError) as error:
            list(loader)
    finally:  # as Lightning does after an error: left to a later garbage collection, the joins take seconds
        loader._iterator._shutdown_workers()
    message = str(error.value)
    assert message.startswith(f"{bad} (class 'b', train index 3) is not a usable image: image file is truncated")
    assert "Traceback" not in message and "worker" not in message


def test_skipped_files_leave_every_rank_the_same_samples_and_rank_zero_lists_them(tmp_path, capsys, monkeypatch):
    from lightning.fabric.utilities.rank_zero import rank_zero_only

    root = make_splits(tmp_path, {"a": 3, "b": 3})
    write_bad(root / "train" / "a" / "bad.jpg", "truncated")
    first = fitted(root, on_bad_file="skip")
    assert capsys.readouterr().out.count("Skipped 1 bad image file") == 1
    monkeypatch.setattr(rank_zero_only, "rank", 1)  # the second process of a DDP run
    second = fitted(root, on_bad_file="skip")
    assert "Skipped" not in capsys.readouterr().out
    for split in ("train", "val"):  # the same files left out: every rank's sampler splits the same length
        assert second.datasets[split].paths == first.datasets[split].paths and len(second.datasets[split]) == 6


def test_an_archive_in_the_folder_is_never_extracted(tmp_path, capsys):
    import tarfile
    import zipfile

    from image_fixtures import noisy_jpeg_bytes

    root = make_splits(tmp_path / "data", {"a": 2, "b": 2})
    with zipfile.ZipFile(root / "train" / "a" / "more.zip", "w") as archive:
        archive.writestr("../../../../evil.jpg", noisy_jpeg_bytes())
    member = tarfile.TarInfo("../../../../evil_tar.jpg")
    member.size = len(noisy_jpeg_bytes())
    with tarfile.open(root / "train" / "b" / "more.tar", "w") as archive:
        archive.addfile(member, io.BytesIO(noisy_jpeg_bytes()))
    (root / "val" / "a" / "zipped.jpg").write_bytes((root / "train" / "a" / "more.zip").read_bytes())
    dm = fitted(root, on_bad_file="skip")
    assert len(dm.datasets["train"]) == 4 and len(dm.datasets["val"]) == 4
    out = capsys.readouterr().out
    assert "ignored 2 entries" in out and "more.zip (not a" in out and "more.tar (not a" in out
    assert "zipped.jpg (class 'a', val index 2): not an image file Pillow can read" in out
    assert not list(tmp_path.rglob("evil*"))


def test_non_ascii_class_names_get_a_stable_sorted_index(tmp_path):
    names = {"蜜蜂": 2, "fourmis": 1, "Ärger": 1, "abeja_ñ": 1}
    make_splits(tmp_path / "one", names)
    make_splits(tmp_path / "two", dict(reversed(names.items())))  # folders made in another order
    dm = fitted(tmp_path / "one")
    assert dm.class_names == module(tmp_path / "two").class_names == ["abeja_ñ", "fourmis", "Ärger", "蜜蜂"]
    val = dm.datasets["val"]
    labels = {path.parent.name: label for path, label in zip(val.paths, val.labels, strict=True)}
    assert labels == {"abeja_ñ": 0, "fourmis": 1, "Ärger": 2, "蜜蜂": 3}
    with pytest.raises(DataFormatError, match="added: 蜜蜂"):  # a checkpoint of the first three classes
        module(tmp_path / "one").load_state_dict({"class_names": ["abeja_ñ", "fourmis", "Ärger"]})


def test_a_checkpoint_of_another_class_set_is_refused_naming_both_class_lists(tmp_path):
    from lit_mlcourse.checkpoint_identity import RECORD_KEY, check_identity, identity

    make_splits(tmp_path / "old", {"ants": 1, "bees": 1})
    make_splits(tmp_path / "new", {"ants": 1, "bees": 1, "wasps": 1})
    model = torch.nn.Linear(2, 2)
    checkpoint = {RECORD_KEY: identity(model, module(tmp_path / "old")), "state_dict": model.state_dict()}
    with pytest.raises(ConfigValueError, match="other data") as error:
        check_identity("best.ckpt", checkpoint, model, module(tmp_path / "new"), "fit")
    assert "classes (ants, bees) and" in str(error.value) and "classes (ants, bees, wasps) and" in str(error.value)
