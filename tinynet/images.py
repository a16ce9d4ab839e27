"""Turning a photo or scan of a handwritten digit into an MNIST-like 28x28 image.

MNIST digits were size-normalised to fit a 20x20 box (keeping their aspect
ratio) and then centred in a 28x28 field by their centre of mass, white on black.
A model trained on MNIST expects exactly that, so :func:`prepare_digit` does the
same to any image:

1. grey: colour is converted with ITU-R 601 luma weights; transparency is laid
   over white;
2. the ink told from the paper: darker (pen on paper) or brighter (chalk on a board)
   than the paper around it (:func:`ink_is_dark`);
3. the background taken away: the paper is estimated locally, by a median wide enough
   to outvote any stroke (:func:`paper`), so a gradient of light or a shadow's edge is
   removed; what is within four noise deviations of the paper is set to 0, the ink is
   divided by the paper's brightness (a shadow dims both alike) and stretched to 1
   (:func:`remove_background`);
4. the digit found on a small copy of the whole photo, then cut from the full photo with
   a margin and cleaned again at its own scale (:func:`find_digit`), specks of noise left
   out;
5. cropped, resized so its longer side is 20 pixels (keeping the aspect ratio) and
   placed in 28x28 with its centre of mass at the centre (:func:`fit_like_mnist`).

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


# -- finding the digit in a photo ------------------------------------------------------------
#
# A photo is paper (or a board) times light: the light falls off across the page, a hand or a
# phone casts a shadow, the sensor adds noise. The digit is what differs from the paper *near
# it*, so the paper is estimated locally and taken away before anything is measured.

PAGE_SIDE = 128  # the whole photo is looked at this large to find the digit ...
DIGIT_SIDE = 64  # ... and the digit, cut from the full photo, at most this large to clean it
NOISE_DEVIATIONS = 4.0  # what is less than 4 noise deviations above the paper is paper


def _shrink(a, side):
    """``a`` averaged down so its longer side is at most ``side``; returns it and the factor."""
    factor = min(1.0, side / max(a.shape))
    if factor == 1.0:
        return a, 1.0
    size = (max(1, round(a.shape[1] * factor)), max(1, round(a.shape[0] * factor)))
    small = _pil().fromarray(a.astype(np.float32), "F").resize(size, _pil().Resampling.BOX)
    return np.asarray(small, dtype=np.float32), factor


def _odd(n) -> int:
    return max(3, int(n) | 1)


def _running(a, width, axis, reduce, samples=None):
    """``reduce`` (np.mean, np.median) over a window of ``width`` centred on each pixel along
    ``axis``; beyond the edges the border pixel repeats. With ``samples``, only about that many
    pixels of each window, evenly spaced and always the centre one, are looked at."""
    pad = [(0, 0), (0, 0)]
    pad[axis] = (width // 2, width - 1 - width // 2)
    windows = np.lib.stride_tricks.sliding_window_view(np.pad(a, pad, mode="edge"), width, axis=axis)
    if samples and width > samples:
        step = width // samples
        windows = windows[..., (width // 2) % step :: step]
    return reduce(windows, axis=-1)


PAPER_SIDE = 64  # the paper is estimated on a copy at most this large, then enlarged
MEDIAN_SAMPLES = 31  # the paper's median looks at 31 pixels of each window: as good, and fast


def _smooth(a):
    """The mean over each 3x3 square: the sensor's noise averaged down before anything is judged."""
    return _running(_running(a, 3, 0, np.mean), 3, 1, np.mean)


def paper(grey, width):
    """The paper under the digit: a median over ``width`` pixels along each row, then along each
    column. A stroke narrower than a third of ``width`` is outvoted and vanishes, in either
    polarity; what only rises or falls along a row and a column (light falling off, the edge of a
    shadow) is a median's own output and stays exactly where it is, to the border."""
    small, factor = _shrink(grey, PAPER_SIDE)  # the paper is smooth: a small copy shows it all
    width = _odd(width * factor)
    along_columns = _running(small, width, 0, np.median, MEDIAN_SAMPLES)
    under = _running(along_columns, width, 1, np.median, MEDIAN_SAMPLES)
    if factor == 1.0:
        return under
    full = _pil().fromarray(under.astype(np.float32), "F").resize(grey.shape[::-1], _pil().Resampling.BILINEAR)
    return np.asarray(full, dtype=np.float32)


def ink_is_dark(grey) -> bool:
    """Whether the digit is darker than the paper around it (pen on paper) or brighter (chalk on a
    board, a white digit on a screen): the side to which the strongest departures from the
    paper go. Noise and the two sides of a shadow's edge depart both ways alike."""
    a, _ = _shrink(grey, PAGE_SIDE)
    if min(a.shape) < 9:
        return bool(np.median(a) > 0.5)
    departure = _smooth(a) - paper(a, _odd(min(a.shape) / 3))
    return bool(np.percentile(-departure, 99.5) > np.percentile(departure, 99.5))


def remove_background(grey, dark: bool, width: int):
    """The ink alone, bright on black, in [0, 1]: the paper (:func:`paper`) taken away; what is
    less than four deviations of the noise above it set to 0 (the sensor's noise is the same in
    the light and in a shadow); what stands out divided by the paper's brightness for dark ink (a
    shadow dims the ink as much as the paper), then stretched so the ink's own strongest pixels
    reach 1 (contrast normalised, whatever the light and the pen)."""
    smooth = _smooth(grey)
    under = paper(smooth, width)
    contrast = under - smooth if dark else smooth - under
    level = np.median(contrast)
    # the noise's deviation, robustly (most pixels are paper), and never under one step of 8 bits
    deviation = max(1.4826 * np.median(np.abs(contrast - level)), 1.0 / 255)
    floor = level + NOISE_DEVIATIONS * deviation
    ink = np.clip(contrast - floor, 0.0, None)
    if dark:
        ink = ink / np.maximum(under, 0.05)
    above = ink[ink > 0]
    if above.size == 0 or contrast.max() <= floor + NOISE_DEVIATIONS * deviation:
        return np.zeros_like(ink)  # nothing stands out from the noise
    return np.clip(ink / np.percentile(above, 95), 0.0, 1.0).astype(np.float32)


def _box(ink, threshold, share=0.99):
    """The rows and columns (start, stop) holding ``share`` of the ink above ``threshold``, specks
    left out: a speck of noise far away does not stretch it. None when there is no ink."""
    mass = _without_specks(ink, threshold)
    if not (mass > threshold).any():
        return None
    spans = []
    for profile in (mass.sum(axis=1), mass.sum(axis=0)):
        cumulative = np.cumsum(profile) / profile.sum()
        lost = (1.0 - share) / 2
        spans.append((int(np.searchsorted(cumulative, lost)), int(np.searchsorted(cumulative, 1.0 - lost)) + 1))
    return spans


def find_digit(grey, threshold: float = 0.2):
    """The digit cleaned of its background: ``(ink, dark)``, with ``ink`` bright on black, cut
    from the photo around the digit at up to DIGIT_SIDE pixels for it.

    First the whole photo, shrunk to PAGE_SIDE, is cleaned with a median a third of its shorter
    side wide, and the box holding the ink found; then that box and a margin of half its size are
    cut from the full photo, shrunk so the digit is at most DIGIT_SIDE, and cleaned again with a
    median one and a half times the digit wide (the margins' paper outvotes a dense digit), so a
    small digit on a large page keeps its detail.
    """
    if grey.max() - grey.min() < 1.0 / 255:
        raise ValueError("no digit found: the image is blank")
    dark = ink_is_dark(grey)
    page, factor = _shrink(grey, PAGE_SIDE)
    box = _box(remove_background(page, dark, _odd(min(page.shape) / 3)), threshold)
    if box is None:
        raise ValueError("no digit found: nothing stands out from the background")
    (top, bottom), (left, right) = ((int(a / factor), int(np.ceil(b / factor))) for a, b in box)
    side = max(bottom - top, right - left)
    margin = side // 2 + 2
    crop = grey[max(0, top - margin) : bottom + margin, max(0, left - margin) : right + margin]
    crop, scale = _shrink(crop, max(crop.shape) * DIGIT_SIDE / side)
    ink = remove_background(crop, dark, _odd(1.5 * side * scale))
    if not (ink > threshold).any():
        raise ValueError("no digit found: nothing stands out from the background")
    return ink, dark


def blobs(mask):
    """The 8-connected blobs of a boolean mask, largest first: a list of (rows, cols) index arrays.

    Each ink pixel starts with its own index as its label and takes, again and again, the
    smallest label in its 3x3 neighbourhood, then the label of the pixel its label names (a jump
    that halves the distance still to travel), until nothing changes: every pixel of a blob then
    holds the index of the blob's first pixel."""
    h, w = mask.shape
    none = h * w  # the label of paper, larger than any pixel's index
    label = np.where(mask, np.arange(none).reshape(h, w), none)
    while True:
        padded = np.pad(label, 1, constant_values=none)
        smallest = np.min([padded[r : r + h, c : c + w] for r in range(3) for c in range(3)], axis=0)
        new = np.where(mask, smallest, none)
        new[mask] = new.ravel()[new[mask]]  # each label is an ink pixel's index: take that pixel's label
        if np.array_equal(new, label):
            break
        label = new
    names, sizes = np.unique(label[mask], return_counts=True)
    return [np.nonzero(label == name) for name in names[np.argsort(-sizes, kind="stable")]]


def count_digits(image, threshold: float = 0.2) -> int:
    """How many marks side by side the image holds: blobs of ink (8-connected), each at least
    a quarter of the largest, whose columns do not overlap. 1 for one digit, 2 for "42"."""
    grey = to_grey(image)
    if grey.max() - grey.min() < 1.0 / 255:
        return 0
    page, _ = _shrink(grey, PAGE_SIDE)
    ink = remove_background(page, ink_is_dark(grey), _odd(min(page.shape) / 4)) > threshold
    step = max(1, max(ink.shape) // 96)  # a coarse grid is enough, and fast
    found = blobs(ink[::step, ::step])
    spans = sorted((c.min(), c.max()) for _, c in found if len(c) >= 0.25 * len(found[0][1]))
    return sum(1 for k, (left, _) in enumerate(spans) if k == 0 or left > max(right for _, right in spans[:k]))


SPECK = 0.05  # a blob of ink less than 5% of the largest is a speck of noise or dirt, not part of the digit


def _without_specks(ink, threshold):
    found = blobs(ink > threshold)
    keep = np.zeros(ink.shape, bool)
    for rows, cols in found:
        if len(rows) >= SPECK * len(found[0][0]):
            keep[rows, cols] = True
    return np.where(keep, ink, 0.0)


def fit_like_mnist(ink, threshold: float = 0.2) -> np.ndarray:
    """Bright ink on black -> (28, 28) as MNIST was made: cropped to the ink, scaled so its longer
    side is 20 pixels (keeping the aspect ratio), centred by its centre of mass."""
    Image = _pil()
    ink = _without_specks(ink, threshold)
    rows, cols = np.nonzero(ink > threshold)
    a = ink[rows.min() : rows.max() + 1, cols.min() : cols.max() + 1]
    h, w = a.shape
    scale = 20.0 / max(h, w)
    size = (max(1, round(w * scale)), max(1, round(h * scale)))  # Pillow wants (width, height)
    small = np.asarray(Image.fromarray(a.astype(np.float32)).resize(size, Image.Resampling.LANCZOS), np.float32)
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


def prepare_digit(image, threshold: float = 0.2) -> np.ndarray:
    """Any digit image -> (28, 28) float32 in [0, 1], white digit on black, MNIST-style."""
    ink, _ = find_digit(to_grey(image), threshold)
    return fit_like_mnist(ink, threshold)
