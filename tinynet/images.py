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

Reading files (:func:`load_image`, :func:`iter_frames`) scales every kind of image to
[0, 1]: 8-bit by 255, 16-bit by 65535, floats already in [0, 1] as they are, other floats
and 32-bit integers from their minimum to their maximum. A file of several frames (an
animated GIF, a multi-page TIFF) is never read by its first frame alone: each frame is a
digit of its own. An image of more pixels than Pillow's guard against decompression bombs
(``PIL.Image.MAX_IMAGE_PIXELS``, 89.5 million) is refused before it is decoded.

Reading files needs Pillow (installed with matplotlib: ``pip install "tinynet[plot]"``, or
``pip install -e ".[plot]"`` in a checkout).
"""

from __future__ import annotations

import os
import re
from contextlib import closing

import numpy as np

from . import backend


def _pil():
    try:
        from PIL import Image
    except ImportError as e:
        raise ImportError(
            f"reading images needs Pillow ({e}): {backend.install_command('plot')} (or pip install pillow)"
        ) from None
    return Image


MAX_SIDE = 4096  # a larger image is first shrunk by a whole factor (box average): the digit ends at 20x20
MAX_FRAMES = 1000  # an animated GIF or a multi-page TIFF of more frames is refused before any is read


def _megapixels(n) -> str:
    return f"{n / 1e6:.1f} megapixels"


def _open(path):
    """Pillow's image, opened lazily (only the header read), its size checked against Pillow's
    own guard against decompression bombs (``PIL.Image.MAX_IMAGE_PIXELS``)."""
    import warnings

    Image = _pil()
    if not os.path.exists(path):
        raise ValueError(f"{path}: no such file")
    if os.path.isfile(path) and os.path.getsize(path) == 0:
        raise ValueError(f"{path}: the file is empty (0 bytes)")
    limit = Image.MAX_IMAGE_PIXELS
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)  # refused just below, by a clearer message
        try:
            img = Image.open(path)
        except Image.DecompressionBombError as e:
            img, bomb = None, str(e)
        except Exception as e:
            raise _unreadable(path, e) from e
    if img is None:  # Pillow refused it (at twice its limit); its message gives the pixels it counted
        counted = re.search(r"\((\d+) pixels\)", bomb)
        raise ValueError(_too_large(path, None, limit, int(counted.group(1)) if counted else None))
    _check_pixels(path, img, limit)
    return img


def _too_large(path, size, limit, pixels=None) -> str:
    if size:
        said = f"{size[0]}x{size[1]} pixels ({_megapixels(size[0] * size[1])})"
    else:
        said = _megapixels(pixels) if pixels else "of too many pixels"
    return (
        f"{path}: the image is {said}, more than the {_megapixels(limit)} read (Pillow's guard "
        "against decompression bombs, PIL.Image.MAX_IMAGE_PIXELS); shrink it first"
    )


def _check_pixels(path, img, limit):
    if limit is not None and img.size[0] * img.size[1] > limit:
        raise ValueError(_too_large(path, img.size, limit))


def _unreadable(path, e) -> ValueError:
    what = str(e).replace(f"'{os.fspath(path)}'", "").replace(os.fspath(path), "").strip(" :")
    return ValueError(f"{path}: cannot read it as an image ({what or type(e).__name__})")


def _frame_to_grey(img) -> np.ndarray:
    """One frame of an open Pillow image -> grey float32 in [0, 1], shrunk to MAX_SIDE.

    8-bit images (grey, colour, palette) are divided by 255, transparency laid over white;
    16-bit ones by 65535; float images whose values lie in [0, 1] are taken as they are, and
    any other float or 32-bit integer image is stretched from its minimum (0) to its maximum (1).
    """
    Image = _pil()
    sixteen = img.mode.startswith("I;16")
    if sixteen:
        img = img.convert("I")
    elif img.mode in ("P", "PA"):
        img = img.convert("RGBA" if img.mode == "PA" or "transparency" in img.info else "RGB")
    elif img.mode == "1":
        img = img.convert("L")
    elif img.mode not in ("L", "LA", "RGB", "RGBA", "I", "F"):
        img = img.convert("RGBA" if "A" in img.mode else "RGB")  # CMYK, YCbCr, HSV ...
    if max(img.size) > MAX_SIDE:
        img = img.reduce(-(-max(img.size) // MAX_SIDE))
    if img.mode in ("RGBA", "LA"):
        rgba = img.convert("RGBA")
        img = Image.alpha_composite(Image.new("RGBA", rgba.size, (255, 255, 255, 255)), rgba)
    if img.mode not in ("I", "F"):
        return np.asarray(img.convert("L"), dtype=np.float32) / 255.0
    a = np.asarray(img, dtype=np.float64)
    if not np.all(np.isfinite(a)):
        raise ValueError("the image holds NaN or infinite values")
    if sixteen:
        return (a / 65535.0).astype(np.float32)
    if img.mode == "F" and a.size and a.min() >= 0.0 and a.max() <= 1.0:
        return a.astype(np.float32)
    low, high = (a.min(), a.max()) if a.size else (0.0, 0.0)
    return ((a - low) / (high - low) if high > low else np.zeros_like(a)).astype(np.float32)


def count_frames(path) -> int:
    """How many frames (an animated GIF's, a multi-page TIFF's) the image file holds; 1 for most."""
    with _open(path) as img:
        return int(getattr(img, "n_frames", 1))


def iter_frames(path):
    """Each frame of an image file, one at a time: ``(index, count, grey)`` with ``grey`` as
    :func:`load_image` gives it. A still image is one frame; more than MAX_FRAMES are refused."""
    with _open(path) as img:
        count = int(getattr(img, "n_frames", 1))
        if count > MAX_FRAMES:
            raise ValueError(f"{path}: the image holds {count} frames; at most {MAX_FRAMES} are read")
        for index in range(count):
            try:
                img.seek(index)
                _check_pixels(path, img, _pil().MAX_IMAGE_PIXELS)  # a TIFF's pages each have a size
                img.load()
                grey = _frame_to_grey(img)
            except ValueError as e:
                if os.fspath(path) in str(e):
                    raise
                raise ValueError(f"{path}: {e}") from e
            except MemoryError:
                raise ValueError(f"{path}: not enough memory to read {img.size[0]}x{img.size[1]} pixels") from None
            except Exception as e:  # whatever a damaged file provokes in a decoder, named, never raw
                raise _unreadable(path, e) from e
            yield index, count, grey


def load_image(path, frame: int | None = None) -> np.ndarray:
    """Read an image file (PNG, JPEG, TIFF, ...) as a grey float32 array in [0, 1].

    8-bit images are divided by 255 (colour through ITU-R 601 luma, transparency laid over
    white), 16-bit ones by 65535; float images already in [0, 1] are kept, other float and
    32-bit images stretched from their minimum to their maximum. Images larger than MAX_SIDE
    on a side are shrunk by a whole factor. A file of several frames (an animated GIF, a
    multi-page TIFF) needs ``frame=k``, or :func:`iter_frames` for them all: it is never
    silently read by its first frame.
    """
    if frame is not None and (isinstance(frame, bool) or not isinstance(frame, (int, np.integer))):
        raise TypeError(f"frame must be an int (0 for the first) or None, got {type(frame).__name__} {frame!r}")
    count = count_frames(path)
    if frame is None and count > 1:
        raise ValueError(
            f"{path}: the image holds {count} frames (an animation or several pages); pass frame=k "
            "(0 for the first) or read them all with tinynet.images.iter_frames"
        )
    wanted = 0 if frame is None else int(frame)
    if not 0 <= wanted < count:
        raise ValueError(f"{path}: frame={frame} asked for, the image holds {count} frame(s): 0 to {count - 1}")
    with closing(iter_frames(path)) as frames:
        for index, _, grey in frames:
            if index == wanted:
                return grey
    raise ValueError(f"{path}: frame {wanted} could not be read")  # the file changed between the two reads


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
