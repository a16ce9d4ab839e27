"""Record Keras's newer losses and the "mae" metric in float64, for tests/test_losses.py.

    pip install keras jax && KERAS_BACKEND=jax python benchmarks/losses_reference.py

(Recorded with keras 3.15.1 and jax 0.10.2 on CPU, float64 enabled.) Writes
tests/fixtures/losses.npz: for a fixed batch ``y_true``/``y_pred`` (and probability rows for
the KL divergence), each loss's value as ``keras.losses.<Loss>()(y_true, y_pred)`` computes it
and its gradient with respect to y_pred by JAX's automatic differentiation.
"""

from __future__ import annotations

import os

os.environ.setdefault("KERAS_BACKEND", "jax")
os.environ.setdefault("JAX_PLATFORMS", "cpu")

import jax  # noqa: E402

jax.config.update("jax_enable_x64", True)

import jax.numpy as jnp  # noqa: E402
import keras  # noqa: E402
import numpy as np  # noqa: E402

keras.config.set_floatx("float64")  # Keras's losses cast to floatx; float32 would hide 1e-8 errors

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(os.path.dirname(HERE), "tests", "fixtures", "losses.npz")


def main():
    rng = np.random.default_rng(0)
    y_true, y_pred = rng.standard_normal((6, 4)) * 2, rng.standard_normal((6, 4)) * 2
    p_true = rng.dirichlet(np.ones(5), size=6)
    p_true[0, 0] = 0.0  # a zero target probability: Keras clips it to epsilon
    p_pred = rng.dirichlet(np.ones(5), size=6)
    out = {"y_true": y_true, "y_pred": y_pred, "p_true": p_true, "p_pred": p_pred}
    cases = {
        "mae": (keras.losses.MeanAbsoluteError(), y_true, y_pred),
        "huber": (keras.losses.Huber(), y_true, y_pred),
        "huber_delta_0.5": (keras.losses.Huber(delta=0.5), y_true, y_pred),
        "kl_divergence": (keras.losses.KLDivergence(), p_true, p_pred),
    }
    for name, (loss, t, p) in cases.items():
        f = lambda v, loss=loss, t=t: loss(jnp.asarray(t), v)  # noqa: E731
        out[f"{name}_loss"] = np.asarray(f(jnp.asarray(p)), dtype=np.float64)
        out[f"{name}_grad"] = np.asarray(jax.grad(f)(jnp.asarray(p)))
    metric = keras.metrics.MeanAbsoluteError()
    metric.update_state(y_true, y_pred)
    out["mae_metric"] = np.asarray(metric.result(), dtype=np.float64)
    out["versions"] = np.array([f"keras={keras.__version__}", f"jax={jax.__version__}"])
    np.savez(OUT, **out)
    print(f"{OUT}: {len(cases)} losses")


if __name__ == "__main__":
    main()
