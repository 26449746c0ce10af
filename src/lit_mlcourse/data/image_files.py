"""Image files of a class-folder dataset: finding them, decoding them, and what to do with bad ones.

Layouts: ``root/train/<class>/...`` and ``root/val/<class>/...`` (optionally ``root/test/<class>/...``), or
``root/<class>/...``. Inside a class folder:

- an image is a file whose name ends in one of ``IMAGE_EXTENSIONS`` (any case); its content decides how
  it is read (a PNG named ``.jpg`` is read as a PNG), and content in a format outside ``ALLOWED_FORMATS``
  is a bad file. GIF is left out, as in torchvision's ImageFolder: animations make poor samples (the one
  GIF in hymenoptera_data is a "not found" placeholder).
- hidden entries (``.DS_Store``, ``._x.jpg``, ``.ipynb_checkpoints``) and ``__MACOSX`` are ignored silently;
  other files are ignored, counted and named once in a note, so a forgotten ``.tif`` folder is noticed.
- subfolders are walked, at most ``MAX_DEPTH`` deep. Links to folders are not followed (a link can form a
  cycle or leave root); a link that resolves outside root is refused, naming the link.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from lightning.fabric.utilities.rank_zero import rank_zero_only
from PIL import Image, ImageOps, UnidentifiedImageError
from torch.utils.data import DataLoader, Dataset

from lit_mlcourse.errors import DataFileNotFoundError, DataFormatError

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".webp")
ALLOWED_FORMATS = frozenset({"JPEG", "MPO", "PNG", "BMP", "WEBP"})  # MPO: multi-picture JPEG from cameras
SPLITS = ("train", "val", "test")
MAX_DEPTH = 32
LAYOUT = (
    "root/train/<class>/*.jpg and root/val/<class>/*.jpg (optionally root/test/<class>/*.jpg), or root/<class>/*.jpg"
)


class ImageBombError(DataFormatError, Image.DecompressionBombError):
    """An image whose pixel count exceeds Pillow's decompression-bomb limit (``Image.MAX_IMAGE_PIXELS``)."""


class BadImageError(Exception):
    """A file that is not a usable image; the message is the reason."""


@dataclass
class BadImage:
    """Why a file could not be decoded (what a decode worker sends back instead of raising)."""

    reason: str
    bomb: bool = False


def _hidden(name: str) -> bool:
    return name.startswith(".") or name == "__MACOSX"


def _outside(path: Path, root: Path) -> bool:
    # realpath never raises: a link cycle comes back unresolved, and is then a missing file, not a hang.
    target = Path(os.path.realpath(path))
    return target != root and root not in target.parents


def class_folders(folder: Path) -> list[str]:
    """Sorted names of the visible subfolders of ``folder``; a linked subfolder is an error."""
    names = []
    for entry in os.scandir(folder):
        if _hidden(entry.name):
            continue
        if entry.is_symlink() and entry.is_dir():
            raise DataFormatError(
                f"{entry.path} is a link to a folder; links to folders are not followed (they can leave the data "
                "folder or form a cycle). Copy the folder there, or point `--data.root` at the real location."
            )
        if entry.is_dir(follow_symlinks=False):
            names.append(entry.name)
    return sorted(names)


def find_layout(root: Path) -> tuple[list[str], dict[str, Path]]:
    """The class names and the split folders of ``root`` (no split folders: one pool of class folders)."""
    if not root.is_dir():
        raise DataFileNotFoundError(
            f"{root} is not a folder. Expected {LAYOUT}; set `--data.root` to the folder holding them."
        )
    top = class_folders(root)
    splits = {name: root / name for name in SPLITS if name in top}
    if not splits:
        if not top:
            raise DataFileNotFoundError(f"{root} has no class folders. Expected {LAYOUT}.")
        return top, {}
    if "train" not in splits or "val" not in splits:
        lacking = "train" if "train" not in splits else "val"
        raise DataFileNotFoundError(
            f"{root} has {', '.join(sorted(splits))}/ but no {lacking}/ folder. Expected {LAYOUT}; with neither "
            "train/ nor val/, the class folders sit directly in root and a validation split is drawn."
        )
    names = class_folders(splits["train"])
    if not names:
        raise DataFileNotFoundError(f"{splits['train']} has no class folders. Expected {LAYOUT}.")
    for split, folder in splits.items():
        found = class_folders(folder)
        missing, extra = sorted(set(names) - set(found)), sorted(set(found) - set(names))
        if missing or extra:
            raise DataFormatError(
                f"{folder} does not have the class folders of {splits['train']}"
                + (f"; missing: {', '.join(missing)}" if missing else "")
                + (f"; extra: {', '.join(extra)}" if extra else "")
                + f". Every split needs the same class folders ({split} included)."
            )
    return names, splits


def list_images(folder: Path, root: Path) -> tuple[list[Path], list[str]]:
    """Image files under ``folder`` (sorted) and the entries ignored there, as ``'path (why)'``."""
    root = Path(os.path.realpath(root))
    images, ignored = [], []
    pending = [(folder, 0)]
    while pending:
        current, depth = pending.pop()
        for entry in os.scandir(current):
            path = Path(entry.path)
            if _hidden(entry.name):
                continue
            if entry.is_symlink() and _outside(path, root):
                raise DataFormatError(
                    f"{path} is a link to {os.path.realpath(path)}, outside {root}; files are only read inside the "
                    "data folder. Copy the file in, or remove the link."
                )
            if entry.is_dir(follow_symlinks=False):
                if depth == MAX_DEPTH:
                    raise DataFormatError(f"{path} is nested more than {MAX_DEPTH} folders deep; flatten the folder.")
                pending.append((path, depth + 1))
            elif entry.is_symlink() and os.path.isdir(path):
                ignored.append(f"{path} (link to a folder, not followed)")
            elif not entry.name.lower().endswith(IMAGE_EXTENSIONS):
                ignored.append(f"{path} (not a {'/'.join(IMAGE_EXTENSIONS)} file)")
            elif entry.is_file() or not os.path.exists(path):  # a dangling link is a bad file, reported later
                images.append(path)
            else:
                ignored.append(f"{path} (not a regular file)")
    return sorted(images), ignored


def list_classes(folder: Path, class_names: list[str], root: Path) -> tuple[list[Path], list[int], list[str]]:
    """Images of every class folder of ``folder``, their labels and the ignored entries."""
    paths, labels, ignored = [], [], []
    for label, name in enumerate(class_names):
        images, skipped = list_images(folder / name, root)
        if not images:
            raise DataFileNotFoundError(
                f"{folder / name} has no image files ({', '.join(IMAGE_EXTENSIONS)}). Add images of class "
                f"'{name}' or remove the folder (from every split)."
            )
        paths += images
        labels += [label] * len(images)
        ignored += skipped
    return paths, labels, ignored


def _to_rgb(image: Image.Image) -> Image.Image:
    if image.mode in ("I;16", "I;16L", "I;16B", "I;16N", "I", "F"):
        # Pillow clips 16-bit samples when converting to 8 bits; scale 0..65535 to 0..255 instead.
        values = np.asarray(image, dtype=np.float64)
        if image.mode.startswith("I;16") or values.max() > 255:
            values = values / 257
        image = Image.fromarray(np.clip(values.round(), 0, 255).astype(np.uint8))
    if image.mode == "P" and "transparency" in image.info:
        image = image.convert("RGBA")  # the direct P -> RGB conversion warns about the transparency
    return image if image.mode == "RGB" else image.convert("RGB")  # drops alpha, as torchvision's loader does


def load_image(path: Path, size: int) -> torch.Tensor:
    """``path`` as a uint8 (3, H, W) tensor whose shorter side is ``size``, upright as its EXIF says.

    Raises:
        BadImageError: the file is empty, not an image, in a format outside ``ALLOWED_FORMATS`` or broken.
        PIL.Image.DecompressionBombError: the image has more pixels than Pillow allows.
    """
    try:
        if os.path.getsize(path) == 0:
            raise BadImageError("the file is empty (0 bytes)")
        with Image.open(path) as image:
            if image.format not in ALLOWED_FORMATS:
                raise BadImageError(f"it is a {image.format} image; allowed: {', '.join(sorted(ALLOWED_FORMATS))}")
            # JPEG decodes straight at 1/2, 1/4 or 1/8 scale when that still covers `size`: a 2592x1944 photo
            # decodes as 324x243, several times faster.
            image.draft("RGB", (size, size))
            image = _to_rgb(ImageOps.exif_transpose(image))
    except (BadImageError, Image.DecompressionBombError):
        raise
    except FileNotFoundError:
        raise BadImageError("the file does not exist (a dangling link?)") from None
    except UnidentifiedImageError:
        raise BadImageError("not an image file Pillow can read") from None
    except Exception as error:  # Pillow's plugins raise OSError, SyntaxError, ValueError, struct.error...
        raise BadImageError(str(error) or type(error).__name__) from None
    width, height = image.size
    scale = size / min(width, height)
    shape = (size, max(size, round(height * scale))) if width <= height else (max(size, round(width * scale)), size)
    # Pillow's resize filters over the whole footprint of each output pixel (antialiased), and
    # reducing_gap first shrinks by an integer factor, which is faster and looks the same.
    image = image.resize(shape, Image.Resampling.BILINEAR, reducing_gap=3.0)  # shape is (width, height)
    return torch.from_numpy(np.array(image)).permute(2, 0, 1).contiguous()  # (H, W, 3) -> (3, H, W)


def try_load(path: Path, size: int) -> torch.Tensor | BadImage:
    """``load_image``, with a bad file returned as a ``BadImage`` instead of raised."""
    try:
        return load_image(path, size)
    except BadImageError as error:
        return BadImage(str(error))
    except Image.DecompressionBombError as error:
        return BadImage(str(error), bomb=True)


class _Decode(Dataset):
    def __init__(self, paths: list[Path], size: int, keep: bool) -> None:
        self.paths, self.size, self.keep = paths, size, keep

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int) -> torch.Tensor | BadImage | None:
        result = try_load(self.paths[index], self.size)
        return result if self.keep or isinstance(result, BadImage) else None


def _as_list(items: list) -> list:
    return items


def decode_all(
    paths: list[Path], size: int, num_workers: int, keep: bool = True
) -> list[torch.Tensor | BadImage | None]:
    """Every file of ``paths`` decoded by ``try_load``, in order, by ``num_workers`` DataLoader workers.
    ``keep=False`` only checks the files: a good image comes back as ``None``, not held in memory."""
    loader = DataLoader(_Decode(paths, size, keep), batch_size=16, num_workers=num_workers, collate_fn=_as_list)
    # A tensor from a worker lives in shared memory that holds one open file per tensor: a private copy
    # frees it, so folders of any size stay under the open-file limit (often 1,024).
    return [
        item.clone() if isinstance(item, torch.Tensor) and num_workers else item for batch in loader for item in batch
    ]


def bad_file_message(path: Path, what: str, reason: str, more: int = 0) -> str:
    """The error for a bad file: ``what`` says which sample it is (class, split, index)."""
    others = f" ({count(more, 'more bad file')} found with it)" if more else ""
    return (
        f"{path} ({what}) is not a usable image: {reason}{others}. Replace or delete the file, or pass "
        "`--data.on_bad_file skip` to leave bad files out."
    )


def bomb_error(path: Path, what: str, reason: str) -> ImageBombError:
    return ImageBombError(
        f"{path} ({what}): {reason} If the image is genuine, shrink it, or raise PIL.Image.MAX_IMAGE_PIXELS "
        "before training."
    )


def count(number: int, noun: str, plural: str | None = None) -> str:
    """``'1 file'``, ``'3 files'``."""
    return f"{number} {noun if number == 1 else plural or noun + 's'}"


@rank_zero_only
def report(lines: list[str], title: str) -> None:
    """Print ``title`` and ``lines`` once (on the first process of a multi-process run)."""
    if lines:
        print("\n  ".join([title, *lines]), flush=True)
