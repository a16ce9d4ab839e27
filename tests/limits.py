"""Run a piece of Python in a child process under a memory limit and a timeout.

For tests that hand a loader a crafted file (a decompression bomb, a header that
declares a huge shape): a regression then fails as a test, with a MemoryError or a
timeout in the child, instead of taking the machine's memory or an hour of its time.

    result = run_limited("from tinynet.datasets import read_idx; read_idx('bomb.gz')", 256 << 20, 60)
    returncode, stdout, stderr, peak_rss_bytes, seconds = result[:5]

``setup`` runs before the limit is set (imports: their size depends on the machine,
not on what is tested); the limit is then the address space the child has after
``setup`` plus ``mem_bytes``, so ``mem_bytes`` is what ``code`` itself may take.
``seconds`` is the time ``code`` took in the child (not the interpreter's start);
``peak_rss_bytes`` the child's peak resident memory, setup included (``VmHWM`` of
/proc/self/status at the end; ``ru_maxrss`` from ``os.wait4`` when the child was
killed before, which can be too high: Linux carries over the high-water mark of the
forked parent), and ``baseline_rss_bytes`` its resident memory when ``code`` started:
their difference is about what ``code`` took.

Linux only (RLIMIT_AS and /proc/self/status); :data:`UNAVAILABLE` says why not
elsewhere, for ``pytest.mark.skipif``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from typing import NamedTuple

UNAVAILABLE = "" if sys.platform.startswith("linux") else f"memory-limited runs need Linux (this is {sys.platform})"
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

CHILD = r"""
import json, resource, sys, time
{setup}
def _status(field):
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
    raise RuntimeError("no " + field + " in /proc/self/status")
_soft, _hard = resource.getrlimit(resource.RLIMIT_AS)
_limit = _status("VmSize") + {mem_bytes}
resource.setrlimit(resource.RLIMIT_AS, (_limit if _hard < 0 else min(_limit, _hard), _hard))
_report = {{"baseline_rss_bytes": _status("VmRSS")}}
_start = time.perf_counter()
try:
    exec(compile({code!r}, "<limited>", "exec"))
finally:
    _report["seconds"] = time.perf_counter() - _start
    _report["peak_rss_bytes"] = _status("VmHWM")
    with open({report!r}, "w") as _f:
        json.dump(_report, _f)
"""


class Limited(NamedTuple):
    returncode: int | None  # None when the timeout killed the child
    stdout: str
    stderr: str
    peak_rss_bytes: int
    seconds: float | None  # None when the child never reached the end of ``code`` (killed)
    baseline_rss_bytes: int | None
    timed_out: bool

    def figures(self) -> str:
        """``"peak 87 MiB (37 at the start), 0.32 s"``: for messages and reports."""
        start = "?" if self.baseline_rss_bytes is None else self.baseline_rss_bytes >> 20
        took = f"{self.seconds:.2f} s" if self.seconds is not None else "killed"
        took += " (timed out)" if self.timed_out else ""
        return f"peak {self.peak_rss_bytes >> 20} MiB ({start} at the start), {took}"


def run_limited(code: str, mem_bytes: int, timeout: float, setup: str = "import numpy, tinynet", env=None) -> Limited:
    """Run ``code`` in a fresh interpreter that may take ``mem_bytes`` more address space
    than ``setup`` left it, killed after ``timeout`` seconds (wall clock, setup included)."""
    if UNAVAILABLE:
        raise RuntimeError(UNAVAILABLE)
    with tempfile.TemporaryDirectory(prefix="tinynet-limited-") as work:
        report = os.path.join(work, "report.json")
        script = CHILD.format(setup=setup, mem_bytes=int(mem_bytes), code=code, report=report)
        child_env = {**os.environ, "PYTHONPATH": os.pathsep.join([ROOT, os.path.join(ROOT, "tests")]), **(env or {})}
        with open(os.path.join(work, "out"), "w+") as out, open(os.path.join(work, "err"), "w+") as err:
            proc = subprocess.Popen(
                [sys.executable, "-c", script], stdout=out, stderr=err, env=child_env, start_new_session=True
            )
            deadline, timed_out = time.monotonic() + timeout, False
            while True:
                pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
                if pid:
                    break
                if time.monotonic() > deadline and not timed_out:
                    timed_out = True
                    os.killpg(proc.pid, 9)
                time.sleep(0.01)
            proc.returncode = os.waitstatus_to_exitcode(status)  # reaped here; Popen must not wait again
            out.seek(0)
            err.seek(0)
            stdout, stderr = out.read(), err.read()
        figures = {}
        if os.path.exists(report):
            with open(report) as f:
                figures = json.load(f)
    return Limited(
        returncode=None if timed_out else proc.returncode,
        stdout=stdout,
        stderr=stderr,
        peak_rss_bytes=figures.get("peak_rss_bytes", usage.ru_maxrss * 1024),  # ru_maxrss: kilobytes on Linux
        seconds=figures.get("seconds"),
        baseline_rss_bytes=figures.get("baseline_rss_bytes"),
        timed_out=timed_out,
    )
