"""The package as pip builds it: a wheel with its licence and no build warnings, and advice
that matches how tinynet was installed (a wheel says ``pip install "tinynet[plot]"``, a
checkout ``pip install -e ".[plot]"``)."""

from __future__ import annotations

import os
import pathlib
import subprocess
import sys
import zipfile

import pytest

from tinynet import backend

ROOT = pathlib.Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def wheel(tmp_path_factory):
    out = tmp_path_factory.mktemp("wheel")
    result = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-v", "-w", str(out), str(ROOT)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    (path,) = out.glob("tinynet-*.whl")
    return path, result.stdout + result.stderr


def test_the_wheel_carries_its_licence_and_builds_without_warnings(wheel):
    path, log = wheel
    assert "deprecat" not in log.lower(), [line for line in log.splitlines() if "eprecat" in line]
    with zipfile.ZipFile(path) as z:
        names = z.namelist()
        metadata = z.read(next(n for n in names if n.endswith(".dist-info/METADATA"))).decode()
        licence = z.read(next(n for n in names if n.endswith("licenses/LICENSE"))).decode()
    assert "License-Expression: MIT" in metadata and "License-File: LICENSE" in metadata
    assert licence.startswith("MIT License") and (ROOT / "LICENSE").read_text() == licence


def test_advice_in_a_checkout_is_an_editable_install():
    assert backend.from_checkout()
    assert backend.install_command("plot") == 'pip install -e ".[plot]"'
    assert "in the tinynet checkout" in backend.install_hint()


def test_advice_after_a_wheel_install_names_the_package(wheel, tmp_path):
    target = tmp_path / "site"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--no-deps",
            "--no-index",
            "-q",
            "--target",
            str(target),
            str(wheel[0]),
        ],
        check=True,
        timeout=300,
    )
    env = {**os.environ, "PYTHONPATH": str(target)}  # NumPy and the rest from this environment
    code = "import tinynet, tinynet.backend as b; print(tinynet.__file__); print(b.install_command('plot'))"
    where, command = subprocess.run(
        [sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True, check=True
    ).stdout.splitlines()
    assert where.startswith(str(target)) and command == 'pip install "tinynet[plot]"'
    report = subprocess.run(
        [sys.executable, "-m", "tinynet"],
        cwd=tmp_path,
        env={**env, "CUDA_VISIBLE_DEVICES": ""},
        capture_output=True,
        text=True,
        timeout=120,
    ).stdout
    if "CuPy is not installed" in report:  # the usual case here; with CuPy the report names the card instead
        assert 'pip install "tinynet[cuda12]"' in report and "pip install -e" not in report
