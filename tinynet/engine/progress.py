"""A Keras-style progress bar that reads well in a terminal and in a CI log.

    Epoch 1/10
    1688/1688 ━━━━━━━━━━━━━━━━━━━━ 3s 2ms/step - accuracy: 0.9102 - loss: 0.3124

``verbose=1``: on a terminal the line redraws in place, at most every
``interval`` seconds (each redraw reads the running loss back from the device,
so the rate is bounded on purpose); in a log (not a terminal) a line is written
every ``log_interval`` seconds and at the end of the epoch. ``verbose=2``: one
line per epoch. ``verbose=0``: nothing.

The numbers are only computed when a line is drawn: ``update`` takes a function
that returns them.
"""

from __future__ import annotations

import shutil
import sys
import time

WIDTH = 20


def format_duration(seconds: float) -> str:
    if seconds >= 3600:
        return f"{int(seconds // 3600)}:{int(seconds % 3600 // 60):02d}:{int(seconds % 60):02d}"
    if seconds >= 60:
        return f"{int(seconds // 60)}:{int(seconds % 60):02d}"
    return f"{seconds:.0f}s"


def format_per_step(seconds: float) -> str:
    if seconds >= 1:
        return f"{seconds:.0f}s/step"
    if seconds >= 1e-3:
        return f"{seconds * 1e3:.0f}ms/step"
    return f"{seconds * 1e6:.0f}us/step"


def format_logs(logs: dict) -> str:
    """- accuracy: 0.9102 - loss: 0.3124   (keys in alphabetical order, as Keras)"""
    return "".join(f" - {k}: {v:.4f}" for k, v in sorted(logs.items()))


def _wrapped(line: str, logs_text: str, columns: int) -> str:
    """``line`` on lines of at most ``columns``, broken only between its logs (" - name: value"),
    the lines after the first indented under the first log."""
    head = line[: len(line) - len(logs_text)] if logs_text and line.endswith(logs_text) else line
    if head == line:
        return line
    parts = [" - " + part for part in logs_text.split(" - ")[1:]]
    indent = " " * min(len(head), columns // 3)
    lines, current = [], head
    for part in parts:
        if len(current) + len(part) > columns and current.strip():
            lines.append(current)
            current = indent + part[1:]  # "- name: value" under the bar
        else:
            current += part
    return "\n".join(lines + [current])


class ProgressBar:
    def __init__(
        self,
        total: int,
        verbose: int = 1,
        stream=None,
        interval: float = 0.1,
        log_interval: float = 30.0,
        label: str = "",
        megabytes: bool = False,
    ):
        """``label`` starts each line; ``megabytes=True`` counts bytes (downloads)."""
        self.total, self.verbose, self.label, self.megabytes = total, verbose, label, megabytes
        self.stream = stream if stream is not None else sys.stdout
        self.tty = bool(getattr(self.stream, "isatty", lambda: False)())
        self.interval = interval if self.tty else log_interval
        self.start = self.last_draw = time.perf_counter()
        encoding = getattr(self.stream, "encoding", None) or "ascii"
        try:
            "━╺".encode(encoding)
            self.chars = ("━", "╺", "─")
        except (UnicodeEncodeError, LookupError):
            self.chars = ("=", ">", ".")
        self._width = 0

    def bar(self, step: int, width: int = WIDTH) -> str:
        done_chars = width * step / max(self.total, 1)
        full = int(done_chars)
        head = self.chars[1] if full < width and done_chars > full else ""
        return self.chars[0] * full + head + self.chars[2] * (width - full - len(head))

    def _line(self, step, logs, final):
        elapsed = time.perf_counter() - self.start
        per_step = elapsed / max(step, 1)
        n = len(str(self.total))
        if self.megabytes:
            when = format_duration(elapsed) if final else "ETA " + format_duration(per_step * (self.total - step))
            return f"{self.label}{step / 1e6:.1f}/{self.total / 1e6:.1f} MB {self.bar(step)} {when}"
        if self.verbose == 2:
            return f"{step}/{self.total} - {format_duration(elapsed)} - {format_per_step(per_step)}{format_logs(logs)}"
        when = format_duration(elapsed) if final else "ETA " + format_duration(per_step * (self.total - step))
        return f"{step:>{n}}/{self.total} {self.bar(step)} {when} {format_per_step(per_step)}{format_logs(logs)}"

    def _fit(self, step, logs, final):
        """The line, narrowed to the terminal's width: a redrawn line that wraps would leave a
        new line behind at every redraw. The bar shrinks first; then a redrawn line is cut, and
        the closing line (written once, every number shown) goes on below at a " - name: value"
        boundary, never splitting a number as the terminal's own wrapping would."""
        line = self._line(step, logs, final)
        columns = shutil.get_terminal_size((80, 24)).columns - 1
        if not self.tty or len(line) <= columns:
            return line
        bar, full = self.bar(step), line
        if self.verbose == 1 and bar in line:
            line = line.replace(bar, self.bar(step, max(WIDTH - (len(line) - columns), 5)), 1)
        if len(line) <= columns:
            return line
        if final:  # too long even with a short bar: the whole bar, and the logs on more lines
            return _wrapped(full, format_logs(logs), columns)
        return line[: columns - 1] + ("…" if self.chars[0] == "━" else "~")

    def _write(self, line, final):
        if self.tty:
            first, _, rest = line.partition("\n")  # only the first line redraws over the last one
            pad = max(self._width - len(first), 0)
            self.stream.write("\r" + first + " " * pad + ("\n" + rest if rest else "") + ("\n" if final else ""))
            self._width = len(first)
        else:
            self.stream.write(line + "\n")
        self.stream.flush()

    def update(self, step: int, logs_fn):
        """Maybe redraw after ``step`` steps; ``logs_fn()`` gives the running logs."""
        if self.verbose != 1 or step >= self.total:
            return
        now = time.perf_counter()
        if now - self.last_draw < self.interval:
            return
        self.last_draw = now
        self._write(self._fit(step, logs_fn(), final=False), final=False)

    def finish(self, logs: dict):
        """The epoch's closing line, with every log (validation included)."""
        if self.verbose:
            self._write(self._fit(self.total, logs, final=True), final=True)
