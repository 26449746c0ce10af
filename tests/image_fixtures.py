"""Tiny image folders for the image-folder tests: good images in every mode Pillow reads, and the bad
files real folders contain (empty, truncated, text named .jpg, a TIFF or FITS named .jpg, a decompression bomb)."""

from __future__ import annotations

import io
import struct
import zlib
from pathlib import Path

import numpy as np
from PIL import Image

SIZE = (20, 16)  # width, height


def save(path: Path, color: tuple[int, int, int] = (200, 40, 90), size: tuple[int, int] = SIZE) -> Path:
    """A solid RGB image in the format of ``path``'s extension (``.jpg`` is JPEG)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fmt = {".jpg": "JPEG", ".jpeg": "JPEG", ".png": "PNG", ".bmp": "BMP", ".webp": "WEBP"}[path.suffix.lower()]
    Image.new("RGB", size, color).save(path, fmt)
    return path


def make_classes(folder: Path, counts: dict[str, int], suffix: str = ".png") -> Path:
    """``folder/<class>/<class>_<i><suffix>`` for each class, each image its own solid colour."""
    for label, (name, count) in enumerate(counts.items()):
        for index in range(count):
            save(folder / name / f"{name}_{index:02d}{suffix}", (40 * label % 256, 7 * index % 256, 100))
    return folder


def make_splits(root: Path, counts: dict[str, int], splits: tuple[str, ...] = ("train", "val")) -> Path:
    """``root/<split>/<class>/*.png`` with the same classes in every split."""
    for split in splits:
        make_classes(root / split, counts)
    return root


def noisy_jpeg_bytes(seed: int = 0) -> bytes:
    """A 48x48 JPEG of noise: enough scan data that cutting it leaves a valid header and a truncated body."""
    pixels = np.random.default_rng(seed).integers(0, 255, (48, 48, 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, "JPEG", quality=90)
    return buffer.getvalue()


def bomb_png(path: Path, width: int = 30000, height: int = 30000) -> Path:
    """A tiny PNG whose header claims ``width`` x ``height`` pixels (the classic decompression bomb)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)  # 8-bit RGB
    path.write_bytes(
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"")) + chunk(b"IEND", b"")
    )
    return path


def fits_bytes() -> bytes:
    """A 20x16 8-bit FITS image (astronomy's format, which Pillow reads): one 2880-byte header block of 80-character
    cards, then one block of pixels."""
    cards = ["SIMPLE  =                    T", "BITPIX  =                    8", "NAXIS   =                    2",
             "NAXIS1  =                   20", "NAXIS2  =                   16", "END"]  # fmt: skip
    return "".join(card.ljust(80) for card in cards).ljust(2880).encode("ascii") + bytes(2880)


def write_bad(path: Path, kind: str) -> Path:
    """A bad file of ``kind``: empty, truncated, text, tiff or fits (formats that are not allowed)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if kind == "empty":
        path.write_bytes(b"")
    elif kind == "truncated":
        data = noisy_jpeg_bytes()
        path.write_bytes(data[: len(data) * 6 // 10])
    elif kind == "text":
        path.write_text("this is not an image\n")
    elif kind == "tiff":
        Image.new("RGB", SIZE).save(path, "TIFF")
    elif kind == "fits":
        path.write_bytes(fits_bytes())
    else:
        raise ValueError(kind)
    return path


BAD_KINDS = {  # kind -> words of the reason the error gives
    "empty": "empty (0 bytes)",
    "truncated": "image file is truncated",
    "text": "not an image file",
    "tiff": "TIFF image",
    "fits": "FITS image",
}


def odd_mode_files(folder: Path) -> dict[str, Path]:
    """Images in the modes that need converting to RGB."""
    folder.mkdir(parents=True, exist_ok=True)
    gray16 = (np.arange(SIZE[0] * SIZE[1]).reshape(SIZE[1], SIZE[0]) * 200).astype(np.uint16)  # up to 63800
    palette = Image.new("P", SIZE, 1)
    palette.putpalette([0, 0, 0, 250, 10, 10] + [0] * 762)
    palette.info["transparency"] = 0
    made = {
        "cmyk": (Image.new("CMYK", SIZE, (0, 255, 255, 0)), "cmyk.jpg"),
        "rgba": (Image.new("RGBA", SIZE, (10, 200, 10, 128)), "rgba.png"),
        "gray16": (Image.fromarray(gray16), "gray16.png"),
        "palette": (palette, "palette.png"),
        "gray": (Image.new("L", SIZE, 77), "gray.jpg"),
        "bilevel": (Image.new("1", SIZE, 1), "bilevel.bmp"),
    }
    paths = {}
    for kind, (image, name) in made.items():
        image.save(folder / name)
        paths[kind] = folder / name
    return paths


def exif_rotated_jpeg(path: Path) -> Path:
    """A 20x16 JPEG whose EXIF orientation (6: rotate 90 degrees clockwise) makes it 16 wide, 20 tall."""
    exif = Image.Exif()
    exif[0x0112] = 6
    Image.new("RGB", SIZE, (10, 20, 30)).save(path, "JPEG", exif=exif)
    return path
