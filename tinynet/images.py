"""Turning a photo or scan of a handwritten digit into an MNIST-like 28x28 image.

MNIST digits were size-normalised to fit a 20x20 box (keeping their aspect
ratio) and then centred in a 28x28 field by their centre of mass, white on black.
A model trained on MNIST expects exactly that, so :func:`prepare_digit` does the
same to any image:

1. grey: colour is converted with ITU-R 601 luma weights; transparency is laid
   over white;
2. values scaled to [0, 1], and inverted when the background (the median of the
   border pixels) is light, so the digit is bright on dark;
3. cropped to the digit's bounding box (pixels above a threshold);
4. resized so its longer side is 20 pixels, keeping the aspect ratio;
5. placed in 28x28 with its centre of mass at the centre.

Reading files needs Pillow (installed with matplotlib: ``pip install -e ".[plot]"``).
"""

from __future__ import annotations

import os

import numpy as np


def _pil():
    try:
        from PIL import Image
    except ImportError as e:
        raise ImportError(
            f"reading images needs Pillow ({e}); pip install pillow "
            '(or, in the tinynet checkout, pip install -e ".[plot]")'
        ) from None
    return Image


def load_image(path) -> np.ndarray:
    """Read an image file (PNG, JPEG, ...) as a grey float array in [0, 1]."""
    Image = _pil()
    if os.path.isfile(path) and os.path.getsize(path) == 0:
        raise ValueError(f"{path}: the file is empty (0 bytes)")
    try:
        with Image.open(path) as img:
            img.load()
            if img.mode in ("RGBA", "LA", "PA") or (img.mode == "P" and "transparency" in img.info):
                rgba = img.convert("RGBA")
                white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
                img = Image.alpha_composite(white, rgba)
            grey = img.convert("L")
    except OSError as e:
        what = str(e).replace(f"'{os.fspath(path)}'", "").replace(os.fspath(path), "").strip(" :")
        raise ValueError(f"{path}: cannot read it as an image ({what or type(e).__name__})") from e
    return np.asarray(grey, dtype=np.float32) / 255.0


def to_grey(image) -> np.ndarray:
    """(H, W), (H, W, 3) or (H, W, 4) uint8 or float -> (H, W) float32 in [0, 1]."""
    a = np.asarray(image)
    if a.dtype.kind in "ui" or a.max(initial=0) > 1.0:
        a = a.astype(np.float32) / 255.0
    a = a.astype(np.float32)
    if a.ndim == 3 and a.shape[2] == 4:  # lay transparency over white
        alpha = a[..., 3:4]
        a = a[..., :3] * alpha + (1 - alpha)
    if a.ndim == 3 and a.shape[2] == 3:
        a = a @ np.array([0.299, 0.587, 0.114], dtype=np.float32)
    if a.ndim != 2:
        raise ValueError(f"expected a grey (H, W) or colour (H, W, 3|4) image, got shape {np.shape(image)}")
    return np.clip(a, 0.0, 1.0)


def _border(a):
    return np.concatenate([a[0], a[-1], a[:, 0], a[:, -1]])


def _ink(image, threshold):
    """A boolean mask of the digit's pixels: grey, bright on dark, background removed."""
    a = to_grey(image)
    if np.median(_border(a)) > 0.5:  # light background: make the digit the bright part
        a = 1.0 - a
    a = np.clip(a - np.median(_border(a)), 0.0, None)  # background to 0
    return a, (a > threshold * a.max()) if a.max() > 0 else np.zeros(a.shape, bool)


def count_digits(image, threshold: float = 0.2) -> int:
    """How many marks side by side the image holds: blobs of ink (8-connected), each at least
    a quarter of the largest, whose columns do not overlap. 1 for one digit, 2 for "42"."""
    _, ink = _ink(image, threshold)
    step = max(1, max(ink.shape) // 96)  # a coarse grid is enough, and fast
    ink = ink[::step, ::step]
    seen, spans = np.zeros(ink.shape, bool), []
    for start in zip(*np.nonzero(ink)):
        if seen[start]:
            continue
        seen[start], stack, cols, size = True, [start], [], 0
        while stack:
            r, c = stack.pop()
            size += 1
            cols.append(c)
            for dr in (-1, 0, 1):
                for dc in (-1, 0, 1):
                    rr, cc = r + dr, c + dc
                    if 0 <= rr < ink.shape[0] and 0 <= cc < ink.shape[1] and ink[rr, cc] and not seen[rr, cc]:
                        seen[rr, cc] = True
                        stack.append((rr, cc))
        spans.append((size, min(cols), max(cols)))
    big = sorted((s for s in spans if s[0] >= 0.25 * max(spans)[0]), key=lambda s: s[1]) if spans else []
    return sum(1 for k, s in enumerate(big) if k == 0 or s[1] > max(t[2] for t in big[:k]))


def prepare_digit(image, threshold: float = 0.2) -> np.ndarray:
    """Any digit image -> (28, 28) float32 in [0, 1], white digit on black, MNIST-style."""
    Image = _pil()
    a, _ = _ink(image, threshold)
    if a.max() <= 0:
        raise ValueError("no digit found: the image is blank")
    a = a / a.max()
    rows, cols = np.nonzero(a > threshold)
    if rows.size == 0:
        raise ValueError("no digit found: nothing stands out from the background")
    a = a[rows.min() : rows.max() + 1, cols.min() : cols.max() + 1]
    h, w = a.shape
    scale = 20.0 / max(h, w)
    size = (max(1, round(w * scale)), max(1, round(h * scale)))  # Pillow wants (width, height)
    lanczos = getattr(Image, "Resampling", Image).LANCZOS
    small = np.asarray(Image.fromarray(a.astype(np.float32)).resize(size, lanczos), dtype=np.float32)
    small = np.clip(small, 0.0, 1.0)
    out = np.zeros((28, 28), dtype=np.float32)
    h, w = small.shape
    top, left = (28 - h) // 2, (28 - w) // 2
    out[top : top + h, left : left + w] = small
    # shift the centre of mass to (14, 14), where MNIST's own digits have theirs, keeping the digit in the field
    total = out.sum()
    cy = (out.sum(axis=1) * np.arange(28)).sum() / total
    cx = (out.sum(axis=0) * np.arange(28)).sum() / total
    dy = int(np.clip(round(14.0 - cy), -top, 28 - h - top))
    dx = int(np.clip(round(14.0 - cx), -left, 28 - w - left))
    return np.roll(out, (dy, dx), axis=(0, 1))
