"""Learning-rate schedules: the learning rate as a function of the step, as Keras.

Pass one (or any callable of the step) as an optimizer's ``learning_rate``; the
optimizer calls it with the number of steps done so far (``iterations``).

    ExponentialDecay:        lr = initial * decay_rate ** (step / decay_steps)
                             (with staircase=True the exponent is floored)
    PiecewiseConstantDecay:  lr = values[0] for step <= boundaries[0],
                             values[i] for boundaries[i-1] < step <= boundaries[i],
                             values[-1] after the last boundary
    CosineDecay:             lr = initial * ((1 - alpha) * c + alpha),
                             c = (1 + cos(pi * min(step, decay_steps) / decay_steps)) / 2
"""

from __future__ import annotations

import bisect
import math

from .validation import in_range


class LearningRateSchedule:
    """Base class: ``schedule(step) -> learning rate``; serialisable with get_config."""

    def __call__(self, step):
        raise NotImplementedError

    def get_config(self) -> dict:
        return dict(self.__dict__)


class ExponentialDecay(LearningRateSchedule):
    def __init__(self, initial_learning_rate, decay_steps, decay_rate, staircase=False):
        self.initial_learning_rate = in_range("initial_learning_rate", initial_learning_rate, 0, lo_open=True)
        self.decay_steps = in_range("decay_steps", decay_steps, 0, lo_open=True)
        self.decay_rate = in_range("decay_rate", decay_rate, 0, lo_open=True)
        self.staircase = bool(staircase)

    def __call__(self, step):
        p = step / self.decay_steps
        if self.staircase:
            p = math.floor(p)
        return self.initial_learning_rate * self.decay_rate**p


class PiecewiseConstantDecay(LearningRateSchedule):
    def __init__(self, boundaries, values):
        boundaries, values = list(boundaries), list(values)
        if len(values) != len(boundaries) + 1:
            raise ValueError(
                f"PiecewiseConstantDecay needs one more value than boundaries, got "
                f"{len(boundaries)} boundaries and {len(values)} values"
            )
        if boundaries != sorted(boundaries):
            raise ValueError(f"PiecewiseConstantDecay boundaries must increase, got {boundaries}")
        self.boundaries, self.values = boundaries, values

    def __call__(self, step):
        return self.values[bisect.bisect_left(self.boundaries, step)]


class CosineDecay(LearningRateSchedule):
    def __init__(self, initial_learning_rate, decay_steps, alpha=0.0):
        self.initial_learning_rate = in_range("initial_learning_rate", initial_learning_rate, 0, lo_open=True)
        self.decay_steps = in_range("decay_steps", decay_steps, 0, lo_open=True)
        if not 0.0 <= alpha <= 1.0:
            raise ValueError(f"CosineDecay alpha must be in [0, 1], got {alpha!r}")
        self.alpha = float(alpha)

    def __call__(self, step):
        c = 0.5 * (1 + math.cos(math.pi * min(step, self.decay_steps) / self.decay_steps))
        return self.initial_learning_rate * ((1 - self.alpha) * c + self.alpha)


SCHEDULES = {c.__name__: c for c in (ExponentialDecay, PiecewiseConstantDecay, CosineDecay)}
