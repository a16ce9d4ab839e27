"""The pages in docs/ run as they are: each page's Python blocks, in order, in a fresh
folder (MNIST on the synthetic stand-in the tests make, or the real files when
TINYNET_DATA_DIR is set), each printed line checked where the page promises it."""

from __future__ import annotations

import contextlib
import io
import os
import pathlib
import re

import numpy as np
import pytest
import synthetic

import tinynet as tn

DOCS = pathlib.Path(__file__).resolve().parent.parent / "docs"


def python_blocks(page: pathlib.Path) -> list[str]:
    return re.findall(r"^```python\n(.*?)^```", page.read_text(), flags=re.S | re.M)


def run_page(page, tmp_path, monkeypatch, real_data):
    if not real_data:
        data = synthetic.write_mnist_dir(tmp_path / "mnist", n_train=600, n_test=200)
        monkeypatch.setattr(tn.datasets.mnist, "load_data", lambda *a, **k: data)
    monkeypatch.chdir(tmp_path)
    out, namespace = io.StringIO(), {"__name__": "__docs__"}
    with contextlib.redirect_stdout(out):
        for block in python_blocks(page):
            exec(compile(block, str(page), "exec"), namespace)
    return out.getvalue(), namespace


def test_every_page_has_code_to_run():
    assert python_blocks(DOCS / "custom_layer.md"), "the page lost its code blocks"


@pytest.mark.parametrize("real_data", [False, True], ids=["synthetic", "mnist"])
def test_the_custom_layer_page_runs(tmp_path, monkeypatch, real_data):
    if real_data and not os.environ.get("TINYNET_DATA_DIR"):
        pytest.skip("TINYNET_DATA_DIR is not set")
    text, namespace = run_page(DOCS / "custom_layer.md", tmp_path, monkeypatch, real_data)
    checked = re.search(r"backward says (\S+), central differences (\S+)", text)
    assert checked and float(checked[1]) == pytest.approx(float(checked[2]), rel=1e-6)
    assert "caught: " in text and "parameter scale" in text  # the wrong backward, named
    accuracy = float(re.search(r"test accuracy (\S+);", text)[1])
    assert accuracy > (0.95 if real_data else 0.8)
    assert "scaled.keras: loaded, same predictions" in text and "scaled.npz: loaded, same predictions" in text
    assert "RegisteredScale\n" in text
    assert "unknown layer class 'FeatureScale'" in text and "custom_objects=" in text
    scale = namespace["model"].get_layer("feature_scale").scale.numpy()
    assert not np.allclose(scale, 1.0)  # it learned
