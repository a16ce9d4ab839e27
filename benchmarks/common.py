"""What the benchmark scripts share: the machine's name and an epoch timer."""

from __future__ import annotations

import platform
import time


def cpu_name() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def epoch_timer(callback_base, times: list, sync=None):
    """A callback (subclass of ``callback_base``, Keras's or tinynet's) that appends
    each epoch's wall time to ``times``; ``sync()`` waits for the device first."""

    class EpochTimer(callback_base):
        def on_epoch_begin(self, epoch, logs=None):
            if sync:
                sync()
            self.start = time.perf_counter()

        def on_epoch_end(self, epoch, logs=None):  # the logs were read from the device: synchronised
            times.append(time.perf_counter() - self.start)

    return EpochTimer()
