"""The progress bar: in place on a terminal, whole lines in a log, ASCII when the stream needs it."""

import io
import os
import re
import subprocess
import sys

import pytest

from tinynet.engine.progress import ProgressBar, format_duration, format_per_step


class Terminal(io.StringIO):
    encoding = "utf-8"

    def isatty(self):
        return True


class AsciiLog(io.StringIO):
    encoding = "ascii"


def test_terminal_redraws_in_place_and_ends_with_a_newline():
    out = Terminal()
    bar = ProgressBar(10, verbose=1, stream=out, interval=0)
    bar.update(5, lambda: {"loss": 0.5})
    bar.finish({"loss": 0.25, "accuracy": 0.9})
    text = out.getvalue()
    assert text.startswith("\r 5/10 ━━━━━━━━━━") and "ETA " in text and "- loss: 0.5000" in text
    last = text.split("\r")[-1]
    assert last.startswith("10/10 ━━━━━━━━━━━━━━━━━━━━ ") and last.endswith("- accuracy: 0.9000 - loss: 0.2500\n")


def test_log_gets_whole_lines_in_ascii_and_reads_logs_only_when_drawing():
    out = AsciiLog()
    calls = []
    bar = ProgressBar(4, verbose=1, stream=out, log_interval=3600)
    bar.update(1, lambda: calls.append(1) or {"loss": 1.0})  # not yet: the interval has not passed
    bar.finish({"loss": 0.5})
    assert calls == [] and out.getvalue() == out.getvalue().strip("\r")
    assert out.getvalue().startswith("4/4 ====================") and out.getvalue().count("\n") == 1


def test_verbose_2_is_one_line_per_epoch():
    out = AsciiLog()
    bar = ProgressBar(3, verbose=2, stream=out, interval=0)
    bar.update(1, lambda: {"loss": 1.0})
    bar.finish({"loss": 0.5})
    assert out.getvalue().startswith("3/3 - ") and out.getvalue().count("\n") == 1


def test_formats():
    assert format_duration(5.2) == "5s" and format_duration(75) == "1:15" and format_duration(3725) == "1:02:05"
    assert format_per_step(2.0) == "2s/step" and format_per_step(0.012) == "12ms/step"
    assert format_per_step(0.00025) == "250us/step"


PTY_SCRIPT = """
import numpy as np, tinynet as tn
rng = np.random.default_rng(0)
x, y = rng.standard_normal((640, 8)).astype(np.float32), rng.integers(0, 3, 640)
model = tn.Sequential([tn.Input((8,)), tn.Dense(16, activation="relu"), tn.Dense(3, activation="softmax")], seed=0)
model.compile("adam", "sparse_categorical_crossentropy", metrics=["accuracy"])
model.fit(x, y, epochs=2, batch_size=4, validation_split=0.25, verbose=1)
"""


def screen_lines(raw: str) -> list[str]:
    """What a terminal shows of ``raw``: each line as its last carriage return left it."""
    return [line.split("\r")[-1].rstrip() for line in raw.replace("\r\n", "\n").split("\n")]


@pytest.mark.skipif(sys.platform == "win32", reason="a pseudo-terminal is POSIX")
def test_fit_in_a_real_80_column_pseudo_terminal_never_wraps_a_line():
    import fcntl
    import pty
    import struct
    import termios

    leader, follower = pty.openpty()
    fcntl.ioctl(follower, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 80, 0, 0))  # 24 rows, 80 columns
    env = {k: v for k, v in os.environ.items() if k not in ("COLUMNS", "LINES")}
    child = subprocess.Popen(
        [sys.executable, "-c", PTY_SCRIPT], stdin=follower, stdout=follower, stderr=follower, env=env
    )
    os.close(follower)
    chunks = []
    while True:
        try:
            data = os.read(leader, 65536)
        except OSError:  # the child closed its end
            break
        if not data:
            break
        chunks.append(data)
    assert child.wait(timeout=120) == 0, b"".join(chunks).decode(errors="replace")[-2000:]
    lines = [line for line in screen_lines(b"".join(chunks).decode("utf-8")) if line]
    assert any("val_accuracy" in line for line in lines), lines
    assert all(len(line) <= 80 for line in lines), [line for line in lines if len(line) > 80]
    for name in ("accuracy", "loss", "val_accuracy", "val_loss"):  # every number whole
        assert any(re.search(rf"(^|\s){name}: \d\.\d{{4}}(\s|$)", line) for line in lines), (name, lines)
