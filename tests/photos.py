"""Photos of digits, as a phone sees a digit written on paper: the tests make them from
28x28 digits, so the preparation of real pictures can be tested without real pictures.

A photo is reflectance times light, plus sensor noise, rounded to 8 bits:

- the digit (bright on black, as MNIST stores it) is enlarged and placed on the page
  at a chosen size and position;
- reflectance: paper (white or grey) where the digit is 0, ink where it is 1, mixed
  between; light-on-dark (chalk on a board) swaps the two;
- light: even, a gradient across the page, or a soft-edged shadow across the digit;
- noise: Gaussian, per pixel.

Each condition in :data:`CONDITIONS` names one of these, as a test asks for it.
"""

from __future__ import annotations

import numpy as np
from PIL import Image

# name -> what the photo has: paper and ink reflectance, light, noise, digit size and place
CONDITIONS = {
    "clean": {},
    "gradient": {"light": "gradient"},
    "shadow": {"light": "shadow"},
    "grey paper": {"paper": 0.55, "ink": 0.18},
    "noise": {"noise": 0.06},
    "light on dark": {"paper": 0.12, "ink": 0.85},
    "small, off-centre": {"height": 0.18, "place": (0.2, 0.75)},
    "everything": {
        "light": "shadow+gradient",
        "paper": 0.6,
        "ink": 0.15,
        "noise": 0.04,
        "height": 0.3,
        "place": (0.65, 0.35),
    },
}


def _light(kind: str, shape, rng) -> np.ndarray:
    h, w = shape
    yy, xx = np.mgrid[0:h, 0:w] / max(h, w)
    light = np.ones(shape)
    if "gradient" in kind:  # one side of the page a third as bright as the other
        angle = rng.uniform(0, 2 * np.pi)
        ramp = xx * np.cos(angle) + yy * np.sin(angle)
        ramp = (ramp - ramp.min()) / (ramp.max() - ramp.min())
        light *= 0.35 + 0.65 * ramp
    if "shadow" in kind:  # a straight shadow edge through the middle, soft over 4% of the page
        angle = rng.uniform(0, 2 * np.pi)
        side = (xx - 0.5 * w / max(h, w)) * np.cos(angle) + (yy - 0.5 * h / max(h, w)) * np.sin(angle)
        light *= 1.0 - 0.55 / (1.0 + np.exp(-side / 0.02))
    return light


def photo(digit, condition: str = "clean", seed: int = 0, size=(240, 200)) -> np.ndarray:
    """A (H, W) uint8 photo of ``digit`` ((28, 28), bright on black, uint8 or [0, 1])
    under one of :data:`CONDITIONS`."""
    spec = {"paper": 0.9, "ink": 0.12, "light": "even", "noise": 0.01, "height": 0.6, "place": (0.5, 0.5)}
    spec.update(CONDITIONS[condition])
    rng = np.random.default_rng(seed)
    d = np.asarray(digit, dtype=np.float32)
    d = d / 255.0 if d.max() > 1.0 else d
    h, w = size
    side = max(8, int(round(spec["height"] * h)))
    big = np.asarray(Image.fromarray(d).resize((side, side), Image.Resampling.BICUBIC), dtype=np.float64)
    top = int(round(spec["place"][0] * (h - side)))
    left = int(round(spec["place"][1] * (w - side)))
    coverage = np.zeros(size)
    coverage[top : top + side, left : left + side] = np.clip(big, 0.0, 1.0)
    reflectance = spec["paper"] + (spec["ink"] - spec["paper"]) * coverage
    seen = reflectance * _light(spec["light"], size, rng) + rng.normal(0.0, spec["noise"], size)
    return (np.clip(seen, 0.0, 1.0) * 255).round().astype(np.uint8)
