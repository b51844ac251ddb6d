"""imagenet64 samples as pictures: tokens in (row, column, channel) order -> RGB rows of 64 pixels,
and a PNG grid of them (Pillow, the `data` extra)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..errors import UserError

WIDTH = 64  # pixels per image row
ROW_TOKENS = WIDTH * 3


def as_picture(tokens: list[int] | np.ndarray) -> np.ndarray:
    """`[rows, 64, 3]` uint8 of a window of pixel values; a partial last row is black after its end."""
    values = np.asarray(tokens, dtype=np.uint8)
    rows = -(-len(values) // ROW_TOKENS)
    flat = np.zeros(rows * ROW_TOKENS, dtype=np.uint8)
    flat[: len(values)] = values
    return flat.reshape(rows, WIDTH, 3)


def grid(pictures: list[np.ndarray], columns: int, gap: int = 2) -> np.ndarray:
    """Pictures of one size in a grid `columns` wide, `gap` grey pixels between them."""
    height, width = pictures[0].shape[:2]
    rows = -(-len(pictures) // columns)
    out = np.full((rows * (height + gap) - gap, columns * (width + gap) - gap, 3), 128, dtype=np.uint8)
    for i, picture in enumerate(pictures):
        top, left = (i // columns) * (height + gap), (i % columns) * (width + gap)
        out[top : top + height, left : left + width] = picture
    return out


def write_png(path: Path, image: np.ndarray, scale: int = 1) -> None:
    try:
        from PIL import Image
    except ImportError:
        raise UserError("writing the PNG grid needs Pillow: pip install pillow (the `data` extra)") from None
    picture = Image.fromarray(image, mode="RGB")
    if scale > 1:
        picture = picture.resize((image.shape[1] * scale, image.shape[0] * scale), Image.NEAREST)
    picture.save(path, format="PNG")
