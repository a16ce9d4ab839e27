"""What an optimizer holds beyond its update formula: state to move, save and restore.

``Optimizer`` (in :mod:`tinynet.optimizers`) inherits these, so that optimizers.py
reads as the update formulas and nothing else.
"""

from __future__ import annotations

import numpy as np

from .. import backend, schedules
from ..validation import in_range

# running sums of g² (and Adamax's maximum of |g|): a negative one makes sqrt NaN or the step wrong
NON_NEGATIVE_SLOTS = ("v", "velocity", "accumulator", "u", "accumulated_grad", "accumulated_delta_var")


class OptimizerState:
    """The state arrays (``slots``), the step count, the configuration: moved between
    devices, flattened for the flat parameter buffer, saved and restored."""

    def arrange_state(self, params):
        """Lay the state out like ``params``: one flat parameter (the model's flat buffer) or
        one per layer parameter; the moments follow their parameters, in the same order."""
        if self.slots:
            self.slots = self.state_laid_out_as(params)

    def state_laid_out_as(self, params) -> dict:
        """The state arrays as views laid out like ``params`` (one flat parameter or one per
        layer parameter), leaving the optimizer's own layout untouched: saving reads the state
        this way while training goes on with the layout the step uses."""
        laid_out = {}
        for name, arrays in (self.slots or {}).items():
            if [a.shape for a in arrays] == [p.value.shape for p in params]:
                laid_out[name] = list(arrays)
                continue
            xp = backend.get_array_module(arrays[0])
            flat = arrays[0].ravel() if len(arrays) == 1 else xp.concatenate([a.ravel() for a in arrays])
            if flat.size != sum(p.value.size for p in params):
                raise ValueError(f"optimizer state {name!r} does not match the model's parameters")
            laid_out[name], offset = [], 0
            for p in params:
                laid_out[name].append(flat[offset : offset + p.value.size].reshape(p.value.shape))
                offset += p.value.size
        return laid_out

    def get_state(self) -> dict:
        """The step count, the learning rate and the state arrays (for checkpoints)."""
        return {
            "iterations": self.iterations,
            "learning_rate": self.current_learning_rate,
            "slots": {name: [a.copy() for a in arrays] for name, arrays in (self.slots or {}).items()},
        }

    def set_state(self, state, params, device):
        """Put back what :meth:`get_state` returned, checked against ``params`` as the
        constructor checks its arguments: a ValueError for anything training could not go on from."""
        iterations = state["iterations"]
        if isinstance(iterations, bool) or not isinstance(iterations, int) or iterations < 0:
            raise ValueError(f"optimizer iterations must be an integer >= 0, got {iterations!r}")
        learning_rate = state.get("learning_rate")
        if learning_rate is not None:
            in_range("the saved learning_rate", learning_rate, 0)
        if not isinstance(state["slots"], dict):
            raise ValueError(f"optimizer state must map slot names to arrays, got {type(state['slots']).__name__}")
        if state["slots"] and set(state["slots"]) != set(self.slot_names):
            raise ValueError(
                f"optimizer state {sorted(state['slots'])} does not fit {type(self).__name__} "
                f"({sorted(self.slot_names)})"
            )
        for name, arrays in state["slots"].items():
            _check_slot(name, arrays, params)
        slots = {name: [backend.to_device(a, device) for a in arrays] for name, arrays in state["slots"].items()}
        self.slots, self.iterations = (slots or None), iterations
        if not callable(self.learning_rate) and learning_rate is not None:
            self.learning_rate = float(learning_rate)  # as ReduceLROnPlateau left it

    def forget_state(self):
        """Drop the state arrays (the parameters they follow changed): made afresh at the next step."""
        self.slots = None

    def to(self, device: str):
        """Move the state to ``device``."""
        if self.slots is not None:
            self.slots = {k: [backend.to_device(a, device) for a in v] for k, v in self.slots.items()}
        return self

    def get_config(self) -> dict:
        keys = ("learning_rate", "weight_decay", "clipnorm", "clipvalue", "global_clipnorm")
        config = {k: getattr(self, k) for k in keys}
        lr = self.learning_rate
        if isinstance(lr, schedules.LearningRateSchedule):
            config["learning_rate"] = {"schedule": type(lr).__name__, "config": lr.get_config()}
        elif callable(lr):  # an arbitrary function cannot be saved: keep its current value
            config["learning_rate"] = self.current_learning_rate
        return config

    @classmethod
    def from_config(cls, config: dict):
        config = dict(config)
        lr = config.get("learning_rate")
        if isinstance(lr, dict):
            config["learning_rate"] = schedules.SCHEDULES[lr["schedule"]](**lr["config"])
        return cls(**config)


def _check_slot(name, arrays, params):
    """A slot's arrays: finite floats laid out like ``params`` (one per parameter) or as one
    flat array of all of them; the running sums of squares not negative."""
    total = sum(p.value.size for p in params)
    shapes = [tuple(a.shape) for a in arrays] if isinstance(arrays, (list, tuple)) else None
    if shapes is None or not all(hasattr(a, "dtype") for a in arrays):
        raise ValueError(f"optimizer state {name!r} must be a list of arrays, got {type(arrays).__name__}")
    if shapes != [tuple(p.value.shape) for p in params] and shapes != [(total,)]:
        raise ValueError(
            f"optimizer state {name!r} has shapes {shapes[:4]}{'...' if len(shapes) > 4 else ''}; "
            f"expected the parameters' {[tuple(p.value.shape) for p in params][:4]} or one flat ({total},)"
        )
    for a in arrays:
        if np.dtype(a.dtype).kind != "f":
            raise ValueError(f"optimizer state {name!r} has dtype {a.dtype}, expected floats")
        xp = backend.get_array_module(a)
        if not bool(xp.isfinite(a).all()):
            raise ValueError(f"optimizer state {name!r} contains NaN or infinite values")
        if name in NON_NEGATIVE_SLOTS and a.size and float(a.min()) < 0:
            raise ValueError(f"optimizer state {name!r} is a running sum of squares but holds {float(a.min())} < 0")
