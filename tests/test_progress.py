"""The progress bar: in place on a terminal, whole lines in a log, ASCII when the stream needs it."""

import io

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
