"""Record the activations beyond the core, as Keras and JAX compute them, in float64.

    pip install keras jax && KERAS_BACKEND=jax python benchmarks/activations_reference.py

(Recorded with keras 3.15.1 and jax 0.10.2 on CPU, float64 enabled.) For each activation
this writes into tests/fixtures/activations.npz, on one fixed float64 input ``x`` (values
from -8 to 8 plus a spread around 0, never exactly 0) and a fixed ``gy``:

* ``<name>_keras_y``: ``keras.activations.<fn>(x)``, or the Keras layer's output for the layers
  (``LeakyReLU()`` with its own default slope 0.3, ``ELU()``);
* ``<name>_jax_gx``: the gradient of ``sum(gy * f(x))`` by JAX's automatic differentiation,
  the reference tinynet's hand-written backward is compared with.

``versions`` holds the library versions.
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

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(os.path.dirname(HERE), "tests", "fixtures", "activations.npz")

FUNCTIONS = {  # name: (Keras's function or layer, as a function of a float64 array)
    "leaky_relu": lambda x: keras.activations.leaky_relu(x),
    "leaky_relu_layer": lambda x: keras.layers.LeakyReLU(dtype="float64")(x),
    "elu": lambda x: keras.activations.elu(x),
    "elu_layer": lambda x: keras.layers.ELU(dtype="float64")(x),
    "gelu": lambda x: keras.activations.gelu(x),
    "gelu_approximate": lambda x: keras.activations.gelu(x, approximate=True),
    "silu": lambda x: keras.activations.silu(x),
    "softplus": lambda x: keras.activations.softplus(x),
}


def main():
    rng = np.random.default_rng(0)
    x = np.concatenate([np.linspace(-8, 8, 161) + 0.013, rng.standard_normal(200) * 2, rng.uniform(-1e-3, 1e-3, 20)])
    x = x[x != 0].reshape(-1)
    gy = rng.standard_normal(x.shape)
    out = {"x": x, "gy": gy}
    for name, f in FUNCTIONS.items():
        out[f"{name}_keras_y"] = np.asarray(f(jnp.asarray(x)), dtype=np.float64)
        out[f"{name}_jax_gx"] = np.asarray(jax.grad(lambda v, f=f: jnp.sum(jnp.asarray(gy) * f(v)))(jnp.asarray(x)))
    out["versions"] = np.array([f"keras={keras.__version__}", f"jax={jax.__version__}"])
    np.savez(OUT, **out)
    print(f"{OUT}: {len(FUNCTIONS)} activations on {x.size} values")


if __name__ == "__main__":
    main()
