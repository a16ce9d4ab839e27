r"""The fast twins: every one listed once, beside the textbook method it equals, and the
one place that binds methods on objects during training.

The textbook methods (``Dense.backward``, ``Adam.update``, ...) write the formula as
code and allocate what they compute. A fast twin computes exactly what one of them
computes, with less work (:mod:`tinynet.engine.twins_inplace`: in place, fewer passes,
on ranges of samples at once; :mod:`tinynet.engine.twins_fused`: one CUDA kernel each).
:data:`TWINS` is the whole list, one row a twin:

| the textbook method    | its twin                          | where                               |
|------------------------|-----------------------------------|-------------------------------------|
| Dense.backward         | dense_backward_into_without_gx    | first layer (its input is data)     |
| Dense.backward         | dense_backward_into               | any later layer                     |
| Dense.forward          | dense_relu_forward_fused          | GPU, ReLU activation, with a bias   |
| Conv2D.forward         | conv2d_forward_inplace            | CPU                                 |
| Conv2D.forward         | conv2d_forward_fused              | GPU                                 |
| Conv2D.backward        | conv2d_backward_into_without_gx   | first layer, ~1 ulp                 |
| Conv2D.backward        | conv2d_backward_by_offsets        | CPU, later layers, ~1 ulp           |
| Conv2D.backward        | conv2d_backward_fused             | GPU, later layers                   |
| MaxPooling2D.forward   | maxpool_forward_fused / _tiled    | windows that tile the input (GPU / other) |
| MaxPooling2D.backward  | maxpool_backward_fused / _tiled   | the same                            |
| ReLU.backward          | relu_backward_fused               | GPU (a layer or a layer's activation) |
| SparseCategoricalCrossentropy.forward, .backward | sparse_crossentropy_*_fused | GPU, from logits    |
| Adam.update            | adam_fused / adam_update_inplace  | GPU / CPU                           |
| RMSprop.update         | rmsprop_fused / rmsprop_update_inplace | plain (not centred, no momentum) |
| SGD.update             | sgd_momentum_fused                | GPU, with momentum                  |

:func:`install` runs one small loop over the model's objects and that table, once, when
training starts (``fit``, ``train_on_batch``): each object whose method is still its
class's own textbook method gets the first twin whose row applies (a subclass that
overrides ``backward``, a learner's own layer, keeps its own), as an instance attribute
that shadows the class's method; :func:`remove` takes them away when training ends, so
outside training every method is the textbook one. ``enabled = False`` keeps the
textbook methods everywhere.

Every other run-time swap goes through this module too: :func:`bind` and :func:`unbind`
(Keras's loss rule, :func:`tinynet.engine.keras_rules.loss_for`), and
:func:`take_off` (a deep copy of a model made during ``fit``, as ``tn.trace`` makes one).
``tests/test_fast.py`` holds every twin equal to its textbook method.
"""

from __future__ import annotations

import functools
import types
import weakref
from collections.abc import Callable
from dataclasses import dataclass

from ..layers import Conv2D, Dense, MaxPooling2D, ReLU
from ..losses import SparseCategoricalCrossentropy
from ..optimizers import SGD, Adam, RMSprop
from . import kernels
from .twins_fused import (
    adam_fused,
    conv2d_backward_fused,
    conv2d_forward_fused,
    dense_relu_forward_fused,
    maxpool_backward_fused,
    maxpool_forward_fused,
    relu_backward_fused,
    rmsprop_fused,
    sgd_momentum_fused,
    sparse_crossentropy_backward_fused,
    sparse_crossentropy_forward_fused,
)
from .twins_inplace import (
    Scratch,
    adam_update_inplace,
    conv2d_backward_by_offsets,
    conv2d_backward_into_without_gx,
    conv2d_forward_inplace,
    dense_backward_into,
    dense_backward_into_without_gx,
    forget_work_arrays,
    maxpool_backward_tiled,
    maxpool_forward_tiled,
    rmsprop_update_inplace,
    runs_textbook,
)

enabled = True


@dataclass(frozen=True)
class Place:
    """Where an object trains: what a row of :data:`TWINS` may ask."""

    gpu: bool  # on the GPU, with tinynet's kernels on
    cpu: bool
    first: bool  # the model's first layer (its input is data: no gx needed)
    threads: int  # over how many threads the CPU twins cut a batch (tinynet.engine.threads)


def _tiles(pool) -> bool:
    """Whether a pooling layer's windows tile its input ("valid", strides == pool size)."""
    return pool.window.padding == "valid" and pool.window.strides == pool.window.size


def _textbook_pooling(pool) -> bool:
    return runs_textbook(pool, MaxPooling2D, "forward") and runs_textbook(pool, MaxPooling2D, "backward")


def _tiling(pool, at) -> bool:
    """A pooling layer whose forward and backward are both the textbook's, on windows that tile."""
    return _tiles(pool) and _textbook_pooling(pool)


@dataclass(frozen=True)
class Twin:
    """One row: ``twin`` stands in for ``cls.method`` where ``applies(obj, place)``;
    ``threaded`` twins take ``threads=``, ``scratch`` ones the optimizer's work arrays."""

    cls: type
    method: str
    twin: Callable
    applies: Callable = lambda obj, at: True
    threaded: bool = False
    scratch: bool = False


TWINS = (
    Twin(Dense, "backward", dense_backward_into_without_gx, lambda d, at: at.first),
    Twin(Dense, "backward", dense_backward_into),
    Twin(
        Dense, "forward", dense_relu_forward_fused, lambda d, at: at.gpu and type(d.activation) is ReLU and d.use_bias
    ),
    Twin(Conv2D, "forward", conv2d_forward_inplace, lambda c, at: at.cpu, threaded=True),
    Twin(Conv2D, "forward", conv2d_forward_fused, lambda c, at: at.gpu),
    Twin(Conv2D, "backward", conv2d_backward_into_without_gx, lambda c, at: at.first, threaded=True),
    Twin(Conv2D, "backward", conv2d_backward_by_offsets, lambda c, at: at.cpu, threaded=True),
    Twin(Conv2D, "backward", conv2d_backward_fused, lambda c, at: at.gpu),
    Twin(MaxPooling2D, "forward", maxpool_forward_fused, lambda p, at: at.gpu and _tiles(p) and _textbook_pooling(p)),
    Twin(MaxPooling2D, "backward", maxpool_backward_fused, lambda p, at: at.gpu and _tiles(p) and _textbook_pooling(p)),
    Twin(
        MaxPooling2D, "forward", maxpool_forward_tiled, lambda p, at: _tiles(p) and _textbook_pooling(p), threaded=True
    ),
    Twin(
        MaxPooling2D,
        "backward",
        maxpool_backward_tiled,
        lambda p, at: _tiles(p) and _textbook_pooling(p),
        threaded=True,
    ),
    Twin(ReLU, "backward", relu_backward_fused, lambda r, at: at.gpu),
    Twin(
        SparseCategoricalCrossentropy,
        "forward",
        sparse_crossentropy_forward_fused,
        lambda loss, at: at.gpu and type(loss) is SparseCategoricalCrossentropy and loss.from_logits,
    ),
    Twin(
        SparseCategoricalCrossentropy,
        "backward",
        sparse_crossentropy_backward_fused,
        lambda loss, at: at.gpu and type(loss) is SparseCategoricalCrossentropy and loss.from_logits,
    ),
    Twin(Adam, "update", adam_fused, lambda opt, at: at.gpu),
    Twin(Adam, "update", adam_update_inplace, scratch=True),
    Twin(RMSprop, "update", rmsprop_fused, lambda opt, at: at.gpu and not opt.centered and opt.momentum == 0),
    Twin(
        RMSprop, "update", rmsprop_update_inplace, lambda opt, at: not opt.centered and opt.momentum == 0, scratch=True
    ),
    Twin(SGD, "update", sgd_momentum_fused, lambda opt, at: at.gpu and opt.momentum > 0),
)

# ------------------------------------------------------------------ the one owner of run-time swaps

_bound: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()  # object -> {method name: who bound it}
_scratch: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()  # optimizer -> its Scratch, kept between fits
SWAPPED = ("forward", "backward", "update")  # the only methods ever swapped


def bind(obj, name, fn, by, **kwargs):
    """``obj.name`` runs ``fn`` (with ``kwargs``) instead of its class's method, until
    :func:`unbind` ``(obj, by)``; ``by`` says who bound it ("twin", "keras rule")."""
    owners = _bound.setdefault(obj, {})
    if name in owners or name in vars(obj):
        raise RuntimeError(f"{type(obj).__name__}.{name} is already swapped ({owners.get(name, 'by hand')})")
    setattr(obj, name, types.MethodType(functools.partial(fn, **kwargs) if kwargs else fn, obj))
    owners[name] = by


def unbind(obj, by):
    """Take away what ``by`` bound on ``obj``: its class's methods run again."""
    owners = _bound.get(obj, {})
    for name in [name for name, owner in owners.items() if owner == by]:
        vars(obj).pop(name, None)
        del owners[name]


def take_off(objs):
    """Every method bound on these objects, gone, whoever bound it, and what a swap kept
    on them (the Keras rule's ``logits``): for a deep copy of a model made during ``fit``,
    which carries the instance attributes but not this module's records of them."""
    for obj in objs:
        for name in SWAPPED:
            bound = vars(obj).get(name)
            if isinstance(bound, types.MethodType) and bound.__self__ is obj:
                del vars(obj)[name]
        vars(obj).pop("logits", None)
        _bound.pop(obj, None)


# ------------------------------------------------------------------ choosing, once


def objects(model):
    """What training may bind methods on: the optimizer, the loss (and the one it wraps),
    every layer and its activation."""
    loss = getattr(model, "loss_fn", None)
    found = [model.optimizer, loss, getattr(loss, "inner", None)]
    for layer in model.layers:
        found += [layer, getattr(layer, "activation", None)]
    return [obj for obj in found if obj is not None]


def _trainees(model, threads):
    """(object, where it trains) for every object a twin may stand in for."""
    gpu, cpu = model.device == "gpu" and kernels.enabled, model.device == "cpu"
    threads = threads if cpu else 1
    yield model.optimizer, Place(gpu, cpu, False, threads)
    yield getattr(model.loss_fn, "inner", model.loss_fn), Place(gpu, cpu, False, threads)
    for k, layer in enumerate(model.layers):
        yield layer, Place(gpu, cpu, k == 0, threads)
        activation = getattr(layer, "activation", None)
        if activation is not None:
            yield activation, Place(gpu, cpu, False, threads)


def install(model, threads=1):
    """Choose, once, the fast twin of each textbook method that has one where the model
    trains. ``threads``: over how many threads the CPU twins of convolutions and pooling
    run ranges of a batch's samples at once (see :mod:`tinynet.engine.threads`)."""
    remove(model)
    if not enabled:
        return
    seen = set()
    for obj, place in _trainees(model, threads):
        if id(obj) in seen:
            continue
        seen.add(id(obj))
        chosen = {}  # method name -> the first row that applies, all chosen before any is bound
        for row in TWINS:
            if row.method not in chosen and runs_textbook(obj, row.cls, row.method) and row.applies(obj, place):
                chosen[row.method] = row
        for row in chosen.values():
            kwargs = {"threads": place.threads} if row.threaded else {}
            if row.scratch:
                kwargs["scratch"] = _scratch.setdefault(obj, Scratch())
            bind(obj, row.method, row.twin, "twin", **kwargs)


def remove(model):
    """Take every twin away: the textbook methods run again."""
    for obj in objects(model):
        unbind(obj, "twin")
        forget_work_arrays(obj)


def splits_steps(model) -> bool:
    """Whether :func:`install` would give ``model`` twins that cut a step's batch into
    ranges of samples on threads of their own (its convolutions, on the CPU)."""
    return enabled and model.device == "cpu" and any(runs_textbook(layer, Conv2D, "forward") for layer in model.layers)


def installed(model) -> list[str]:
    """Which twins stand in now, as "object.method = twin" lines (for tests and curious readers)."""
    lines = []
    for obj in objects(model):
        for name, owner in _bound.get(obj, {}).items():
            if owner != "twin":
                continue
            fn = vars(obj)[name].__func__
            fn = getattr(fn, "func", fn)
            lines.append(f"{getattr(obj, 'name', None) or type(obj).__name__}.{name} = {fn.__name__}")
    return lines
