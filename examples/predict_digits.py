"""Predict the digit in your own image files with a model saved by mnist_mlp.py or mnist_cnn.py.

    python examples/mnist_mlp.py --save mnist_mlp.npz
    python examples/predict_digits.py mnist_mlp.npz my_digit.png another.jpg

Each image (PNG/JPEG/TIFF/GIF, any size, colour or grey, 8-bit, 16-bit or float,
dark-on-light or light-on-dark) is prepared the way MNIST's digits were
(tinynet.images.prepare_digit): grey; the paper's background estimated and
taken away (uneven light, a shadow, grey paper, noise); the contrast normalised;
the digit found, cropped, fitted into 20x20 keeping the aspect ratio, centred by
its centre of mass in 28x28. Then the model predicts. --show-input DIR writes the
prepared 28x28 images, to see what the model saw.

A file of several frames (an animated GIF, a multi-page TIFF) gives one
prediction a frame, each labelled "[frame k of n]". An image that cannot be read
(damaged, blank, larger than Pillow's 89.5-megapixel guard against decompression
bombs) is reported on a line of its own, and the others are still read; the
exit status is then 1.
"""

from __future__ import annotations

import argparse
import os
import sys

import numpy as np

import tinynet as tn
from tinynet.images import count_digits, iter_frames, prepare_digit


def _stem(path, stems) -> str:
    stem = os.path.splitext(os.path.basename(path))[0]
    if stems.count(stem) > 1:  # seven.png and seven.jpg must not overwrite each other
        stem = os.path.basename(path).replace(".", "_")
    return stem


def _predict(model, label, image, digit, show_input, stem):
    marks = count_digits(image)
    if marks > 1:
        print(
            f"warning: {label} seems to hold {marks} digits side by side; the model reads one digit per "
            "image: crop each into a file of its own",
            file=sys.stderr,
        )
    x = digit.reshape(1, -1) if model.input_shape == (784,) else digit.reshape((1,) + model.input_shape)
    probabilities = model.predict(x)[0]
    best = int(np.argmax(probabilities))
    ranked = ", ".join(f"{k}: {probabilities[k]:.3f}" for k in np.argsort(probabilities)[::-1][:3])
    print(f"{label}: predicted {best} (p = {probabilities[best]:.3f}; top 3: {ranked})")
    if probabilities[best] < 0.5 and not show_input:
        print("  (unsure: --show-input DIR writes the 28x28 image the model saw, to check the preparation)")
    print("  probabilities: " + " ".join(f"{k}:{v:.3f}" for k, v in enumerate(probabilities)))
    if show_input:
        from PIL import Image

        os.makedirs(show_input, exist_ok=True)
        Image.fromarray((digit * 255).round().astype(np.uint8)).save(os.path.join(show_input, stem + "_28x28.png"))


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("model", help="a model saved with --save by examples/mnist_mlp.py or mnist_cnn.py (.npz or .keras)")
    p.add_argument("images", nargs="+", help="image files")
    p.add_argument("--show-input", default=None, help="write each prepared 28x28 image as PNG into this directory")
    return p


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    try:
        import PIL.Image  # noqa: F401
    except ImportError as e:
        print(
            f"error: reading images needs Pillow ({e}): {tn.backend.install_command('plot')} or pip install pillow",
            file=sys.stderr,
        )
        return 2
    try:
        model = tn.load_model(args.model)
    except tn.ModelFileError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    status = 0
    if tn.engine.keras_rules.output_head(model).__class__.__name__ == "Sigmoid":
        print("(this model ends in a sigmoid: ten independent scores, one per digit, that need not sum to 1)")
    stems = [os.path.splitext(os.path.basename(p))[0] for p in args.images]
    for path in args.images:
        try:
            for index, count, image in iter_frames(path):
                label = path if count == 1 else f"{path} [frame {index + 1} of {count}]"
                try:
                    digit = prepare_digit(image)
                except ValueError as e:
                    print(f"error: {label}: {e}", file=sys.stderr)
                    status = 1
                    continue
                stem = _stem(path, stems) + ("" if count == 1 else f"_frame{index + 1}")
                _predict(model, label, image, digit, args.show_input, stem)
        except (ValueError, OSError) as e:  # this file cannot be read (any more): say so, go on with the next
            print(f"error: {e}" if os.fspath(path) in str(e) else f"error: {path}: {e}", file=sys.stderr)
            status = 1
    return status


if __name__ == "__main__":
    from common import main_guarded

    sys.exit(main_guarded(main))
