r"""Gradient checking: prove a backward pass right with finite differences.

A backward pass claims to compute dL/dx. Central differences measure it::

    dL/dx_i  ~=  (L(x + eps e_i) - L(x - eps e_i)) / (2 eps)       error O(eps^2)

:func:`numerical_grad` does exactly that, one element at a time: slow, but the
clearest way to see what a gradient *is*. Use it to check your own layer by hand.

:func:`check_backward` is the fast, thorough version used by tinynet's tests. It
turns the layer into a scalar by weighting its output with a fixed ``gy``,
``L(x, params) = sum(gy * forward(x))``, picks one random direction ``d`` over
*all* float inputs and parameters together, and compares two numbers:

- analytic:  sum(gx * d_x) + sum over parameters of sum(gp * d_p), from backward;
- numerical: (L(x + eps d) - L(x - eps d)) / (2 eps).

They must agree within ``atol + rtol * |numerical|``. A wrong gradient anywhere
almost surely changes the directional derivative along a random direction, so one
comparison tests everything at once; when it fails, each input and parameter is
checked alone and, for small ones, element by element to say where it went wrong.

:func:`compare_backward` makes the same comparison and returns the relative error
instead of passing or failing, stepping around kinks (a ReLU at 0, tied maxima);
``tinynet.trace`` reports it for every layer of a model on a real batch.

Always check in float64: in float32 a central difference is only good to about
1e-2 relative and proves nothing. ``check_backward`` and ``compare_backward`` check on
float64 copies of the inputs and of the parameters, and leave the target as it was: each
parameter's value and gradient are its own arrays again afterwards, in their own dtype,
with the same numbers (only what ``forward`` kept for ``backward`` is the check's).
"""

from __future__ import annotations

import contextlib
import math
from typing import NamedTuple

import numpy as np

from . import backend
from .layers import Layer
from .losses import Loss


class GradientCheckError(AssertionError):
    """A backward pass disagrees with central differences."""


def numerical_grad(f, x, eps=1e-3):
    """Element-wise central-difference gradient of a scalar function ``f`` at ``x``.

    ``x`` is perturbed in place, one element at a time, and restored.
    """
    xp = backend.get_array_module(x)
    g = xp.zeros(x.shape, dtype=np.float64)
    for idx in np.ndindex(*x.shape):
        old = x[idx].copy()
        x[idx] = old + eps
        f_plus = float(f(x))
        x[idx] = old - eps
        f_minus = float(f(x))
        x[idx] = old
        g[idx] = (f_plus - f_minus) / (2 * eps)
    return g


def _is_float(a) -> bool:
    return np.dtype(a.dtype).kind == "f"


def _as_functions(target, y_true, forward_kwargs):
    """(forward(*xs), backward(gy), default params) for a layer, model, loss or pair."""
    if isinstance(target, Loss):
        if y_true is None:
            raise ValueError("checking a loss needs y_true=")
        return (lambda p: target.forward(p, y_true), lambda gy: gy * target.backward(), [])
    if isinstance(target, tuple) and len(target) == 2:
        return target[0], target[1], []
    if isinstance(target, Layer) or hasattr(target, "parameters"):
        kwargs = {"training": True, **forward_kwargs}
        return (lambda x: target.forward(x, **kwargs), target.backward, target.parameters())
    raise TypeError(f"cannot check {target!r}: expected a Layer, a model, a Loss or a (forward, backward) pair")


def check_backward(
    target, x, gy=None, params=None, eps=1e-3, atol=1e-5, rtol=1e-4, y_true=None, seed=0, **forward_kwargs
):
    """Check ``target``'s backward against central differences, in float64.

    Args:
        target: a Layer or model (``forward(x, training=True)`` and ``backward(gy)``),
            a Loss (give ``y_true``), or a pair ``(forward, backward)`` of functions
            where ``forward(*xs)`` returns an array and ``backward(gy)`` returns the
            gradient of each input (a tuple when there are several).
        x: the input array, or a tuple of them. Integer inputs (labels) are passed
            through and not checked.
        gy: the output gradient; a random normal array of the output's shape if None.
        params: the parameters to check; defaults to ``target.parameters()``.
        eps, atol, rtol: the step and the tolerances (Chainer's defaults).
        y_true: the targets, when ``target`` is a Loss.
        seed: seeds ``gy`` and the random direction.
        **forward_kwargs: passed to a layer's forward (e.g. ``training=False``).

    Returns:
        (analytic, numerical): the two directional derivatives that agreed.

    Raises:
        GradientCheckError: with the culprit input or parameter, and where and by how
            much it is off.
    """
    rng = np.random.default_rng(seed)
    with _analytic(target, x, gy, params, y_true, rng, forward_kwargs) as (loss, named):
        check = _Directional(loss, named, rng, eps, atol, rtol)
        analytic, numerical, ok = check.compare()
        if not ok:
            raise GradientCheckError(check.report(analytic, numerical))
    return analytic, numerical


class Comparison(NamedTuple):
    """What :func:`compare_backward` measured: the directional derivative from backward
    (``analytic``) and from central differences (``numerical``), their ``relative_error``
    |analytic - numerical| / max(|analytic|, |numerical|) (infinite for a NaN), and
    ``direction``: which array (the worst) and how it was moved: "random", or
    "order-preserving" or "one-sided" where the random direction crossed a kink."""

    analytic: float
    numerical: float
    relative_error: float
    direction: str


def compare_backward(target, x, gy=None, params=None, eps=1e-6, tolerance=1e-6, y_true=None, seed=0, **kwargs):
    """Measure how far ``target``'s backward is from central differences, in float64
    (raises GradientCheckError only for a gradient of the wrong shape).

    The same comparison as :func:`check_backward` (same arguments), made for each input
    and parameter *alone* and reported as the :class:`Comparison` of the worst of them
    instead of passed or failed, with a smaller step (1e-6: in float64 the difference
    is then good to about 1e-9 relative). A NaN anywhere is an infinite error; two
    derivatives that differ by less than float64 rounding of L can resolve (about
    10 ulps of L over the step) agree.

    Kinks. ReLU at exactly 0 and a max with tied values (a max-pooling window of
    zeros) have no derivative: a step in a random direction lands on different
    sides of the kink, and central differences measure neither side. So when an
    array's random direction disagrees by more than ``tolerance / 100``, it is compared
    again along directions that cross no kink, and its best agreement counts:

    - an :func:`order_preserving_direction`, which moves equal values together and
      leaves zeros at zero (with the step, then with a step 100 times smaller);
    - for an array whose values are all equal (a fresh bias of zeros, which such a
      direction would not move at all), a direction of positive steps, with the
      one-sided differences (L(a) - L(a - t d)) / t and (L(a + t d) - L(a)) / t,
      t = eps, then eps / 100: a bias of zeros in front of a ReLU that sees blank
      pixels sits exactly on the kink (the side below has the slope backward takes,
      0 at 0), and a value just above or below 0 has one side free of the kink.

    Every direction tried moves the array it tests, so a wrong gradient cannot hide
    behind a direction that does not look at it.
    """
    rng = np.random.default_rng(seed)
    with _analytic(target, x, gy, params, y_true, rng, kwargs) as (loss, named):
        check = _Directional(loss, named, rng, eps, 0.0, 0.0)
        # below this, a difference of L is float64 rounding (about 10 ulps of L), not a gradient
        check.noise = 10 * np.finfo(np.float64).eps * max(1.0, abs(float(loss())))
        results = [_compare_array(check, k, rng, tolerance) for k in range(len(named))]
    if not results:
        return Comparison(0.0, 0.0, 0.0, "nothing to check")
    return max(results, key=lambda r: r.relative_error)


def _compare_array(check, k, rng, tolerance):
    """The best agreement for array ``k`` alone, over directions that move it (see compare_backward)."""
    name, a, _ = check.named[k]
    xp = backend.get_array_module(a)
    random_direction = check.directions[k]
    attempts = [("random", random_direction, check.eps, 0)]  # (name, direction, step, side: 0 = central)
    preserving = order_preserving_direction(a, rng)
    if bool(xp.any(preserving != 0)):
        attempts += [("order-preserving", preserving, check.eps, 0)]
        attempts += [("order-preserving", preserving, check.eps / 100, 0)]
    else:  # all values equal (the direction above is 0): steps of one sign, one-sided
        positive = xp.abs(random_direction)
        for step in (check.eps, check.eps / 100):
            attempts += [("one-sided, below", positive, step, -1), ("one-sided, above", positive, step, 1)]
    best = None
    for direction, d, step, side in attempts:
        check.directions[k], check.eps = d, step
        analytic, numerical = check.compare_one_sided(k, side) if side else check.compare(k)[:2]
        floor = check.noise / step / tolerance  # a numerical derivative this small is rounding
        result = Comparison(analytic, numerical, _relative(analytic, numerical, floor), f"{name}: {direction}")
        best = result if best is None or result.relative_error < best.relative_error else best
        if best.relative_error <= tolerance / 100:  # clearly right: no need to step around kinks
            break
    check.directions[k], check.eps = random_direction, attempts[0][2]
    return best


def _relative(a: float, b: float, floor: float = 0.0) -> float:
    """|a - b| / max(|a|, |b|, floor); infinite when either is not finite (a NaN is never
    agreement). The floor keeps two derivatives that are both rounding noise (a bias in
    front of a BatchNormalization, whose gradient is 0) from reading as far apart."""
    if not (math.isfinite(a) and math.isfinite(b)):
        return math.inf
    scale = max(abs(a), abs(b), floor)
    return abs(a - b) / scale if scale > 0 else 0.0


def order_preserving_direction(a, rng, terms: int = 4):
    """A direction d = h(a) that moves each value by a smooth function of the value itself.

    h(v) = sum_k c_k (tanh(w_k v + s_k) - tanh(s_k)), random c, w, s: h(0) = 0 and
    |h'| <= sum |c_k| w_k (about 10). So along a + t d, for |t| below 1/10: equal values
    stay equal (a tie stays a tie), zero stays zero, and no two values swap order
    (a max keeps its argmax, a ReLU input keeps its side). Values that are all equal
    (a bias of zeros) do not move at all: such an array is not tested by this direction.
    """
    xp = backend.get_array_module(a)
    c, w, s = rng.standard_normal(terms), rng.uniform(0.5, 2.0, terms), rng.uniform(-1.0, 1.0, terms)
    d = xp.zeros(a.shape, dtype=np.float64)
    for k in range(terms):
        d += float(c[k]) * (xp.tanh(float(w[k]) * a + float(s[k])) - float(np.tanh(s[k])))
    return d


@contextlib.contextmanager
def _analytic(target, x, gy, params, y_true, rng, forward_kwargs):
    """Float64 copies of the inputs and the parameters, one forward and one backward:
    ``with`` it, (L, [(name, array, its gradient from backward)]) with L() = sum(gy * forward(x));
    on exit every parameter holds its own value and gradient arrays again."""
    forward, backward, default_params = _as_functions(target, y_true, forward_kwargs)
    params = default_params if params is None else params
    single = not isinstance(x, (tuple, list))
    xs = [x] if single else list(x)
    xp = backend.get_array_module(xs[0])

    # float64 everywhere: the inputs copied, each parameter checked on a copy of its own
    xs = [xp.array(a, dtype=np.float64) if _is_float(a) else a for a in xs]
    saved = [(p, p.value, p.grad) for p in params]
    try:
        for p in params:
            p.value = p.value.astype(np.float64)  # a copy: the check moves it
            p.grad = None if p.grad is None else p.grad.astype(np.float64)
        yield _differentiate(forward, backward, xs, gy, params, single, rng)
    finally:
        for p, value, grad in saved:
            p.value, p.grad = value, grad


def _differentiate(forward, backward, xs, gy, params, single, rng):
    """(L, [(name, array, its gradient from backward)]) from one forward and one backward."""
    xp = backend.get_array_module(xs[0])
    # analytic gradients from one forward and one backward
    y = forward(*xs)
    if gy is None:
        gy = xp.asarray(rng.standard_normal(np.shape(y)))
    gxs = backward(gy)
    gxs = [gxs] if single or not isinstance(gxs, (tuple, list)) else list(gxs)
    # every checked array with its analytic gradient
    named = [(f"input {i}" if not single else "x", a, g) for i, (a, g) in enumerate(zip(xs, gxs)) if _is_float(a)]
    named += [(f"parameter {p.name}", p.value, p.grad.copy()) for p in params]
    for name, a, g in named:
        if g is None or tuple(g.shape) != tuple(a.shape):
            raise GradientCheckError(
                f"gradient of {name} has shape {None if g is None else tuple(g.shape)}, expected {tuple(a.shape)}"
            )
    return (lambda: (gy * forward(*xs)).sum()), named


class _Directional:
    """The comparison along one random direction d over every checked array at once."""

    def __init__(self, loss, named, rng, eps, atol, rtol):
        self.loss, self.named, self.eps, self.atol, self.rtol = loss, named, eps, atol, rtol
        xp = backend.get_array_module(named[0][1]) if named else np
        self.directions = [xp.asarray(rng.standard_normal(a.shape)) for _, a, _ in named]

    def loss_along(self, scale, only=None):
        """L at (inputs, params) + scale * direction; restores them after."""
        moved = [k for k in range(len(self.named)) if only is None or k == only]
        for k in moved:
            self.named[k][1][...] += scale * self.directions[k]
        value = float(self.loss())
        for k in moved:
            self.named[k][1][...] -= scale * self.directions[k]
        return value

    def compare(self, only=None):
        """(analytic, numerical, within tolerance) along d, or along d's part for array ``only``."""
        chosen = range(len(self.named)) if only is None else [only]
        analytic = sum(float((self.named[k][2] * self.directions[k]).sum()) for k in chosen)
        numerical = (self.loss_along(self.eps, only) - self.loss_along(-self.eps, only)) / (2 * self.eps)
        return analytic, numerical, abs(analytic - numerical) <= self.atol + self.rtol * abs(numerical)

    def compare_one_sided(self, k, side):
        """(analytic, numerical) along array ``k``'s direction, numerical from one side:
        (L(a) - L(a - eps d)) / eps below (side -1), (L(a + eps d) - L(a)) / eps above (+1)."""
        analytic = float((self.named[k][2] * self.directions[k]).sum())
        numerical = side * (self.loss_along(side * self.eps, k) - self.loss_along(0.0, k)) / self.eps
        return analytic, numerical

    def report(self, analytic, numerical):
        """What failed: each culprit array alone, and for small ones its worst element."""
        lines = [
            f"gradient check failed: directional derivative from backward {analytic:.6g}, "
            f"from central differences {numerical:.6g} (|diff| {abs(analytic - numerical):.3g}, "
            f"allowed {self.atol + self.rtol * abs(numerical):.3g})"
        ]
        for k, (name, a, g) in enumerate(self.named):
            a_k, n_k, ok_k = self.compare(k)
            if ok_k:
                continue
            line = f"  {name} {tuple(a.shape)}: backward {a_k:.6g} vs numerical {n_k:.6g}"
            if a.size <= 4096:
                num = numerical_grad(lambda _: self.loss(), a, self.eps)
                err = abs(backend.to_numpy(g) - backend.to_numpy(num))
                where = np.unravel_index(int(err.argmax()), err.shape)
                line += (
                    f"; worst element {tuple(int(i) for i in where)}: backward "
                    f"{float(g[where]):.6g}, numerical {float(num[where]):.6g}"
                )
            lines.append(line)
        return "\n".join(lines)
