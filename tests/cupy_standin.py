"""A strict stand-in for CuPy, backed by NumPy, so the GPU code path runs in CI.

``make_module()`` returns a module named ``cupy`` that backs the part of CuPy's API
tinynet uses. Its arrays hold NumPy arrays, but they refuse what real CuPy refuses:

- ``np.asarray(a)`` (``__array__``) of a device array: TypeError, use ``.get()``;
- a host (NumPy) array mixed with a device array in one operation, and ``out=``
  that is not a device array: TypeError;
- a name CuPy's namespace does not have (only an allowlist exists): AttributeError.

And, as CuPy, it warns of no floating-point event (overflow, 0/0, inf - inf): a GPU raises no
floating-point exceptions, so every operation runs with NumPy's warnings off (:func:`_quietly`).

It counts, in ``counts``, each **sync** (a read that makes the host wait for the
device: ``float()``, ``int()``, ``bool()``, ``.item()``, ``.get()``, ``.tolist()``,
``asnumpy``, ``repr``) and each **upload** (host data copied to the device:
``asarray`` or ``array`` of host data, a host array assigned into or indexing a
device array, ``.set()``), with where in tinynet each happened (``events``), and each
stream **capture** begun.

``RawKernel`` runs the real CUDA C source of a tinynet kernel on the CPU: the
source is compiled by the host C++ compiler with ``threadIdx``/``blockIdx`` as
globals and one loop over every block and thread. So the kernels' own arithmetic
(NaN handling, the loss formula) is tested here without a GPU; their GPU build is
tested by NVRTC in ``test_kernels_compile.py``. Each argument is checked against
the kernel's C signature (a Python float would reach a ``float`` parameter as a
double on a real GPU: refused here). A kernel that waits at ``__syncthreads()`` runs each
block's threads as real threads meeting at a barrier, its ``__shared__`` arrays one per block.
Each buffer's allocation reaches a kernel as a copy between two red zones of 0xFF bytes, each
as long as the allocation (at least 64 KiB): a write outside it is an error after the launch,
a read outside it reads NaN (or -1). Not caught: a write or read past a view but inside its
allocation; a write beyond the red zones, or of 0xFF bytes (a NaN with every bit set, an int
-1); buffers whose allocation is not C-contiguous or is read-only (they run in place); and,
as blocks run one at a time, races between blocks.

``cuda.Stream`` capture records tinynet's RawKernel launches instead of running them, and
refuses every other operation meanwhile (an array operation, an allocation, a host copy, a
read): stricter than CUDA, which captures CuPy's own kernels too, so tinynet's graphs hold its
kernels alone. ``Graph.launch`` replays the launches, and fails if a buffer they use was freed.
"""

from __future__ import annotations

import builtins
import ctypes
import hashlib
import os
import re
import shutil
import subprocess
import tempfile
import traceback
import types
import weakref

import numpy as np

counts = {"sync": 0, "upload": 0, "capture": 0}
events: list[tuple[str, str, str]] = []  # (kind, what, where in tinynet)


def reset_counts():
    counts.update(sync=0, upload=0, capture=0)
    events.clear()


def _count(kind, what):
    counts[kind] += 1
    frames = [f for f in traceback.extract_stack()[:-2] if f"{os.sep}tinynet{os.sep}" in f.filename]
    frames = [f for f in frames if not f.filename.endswith("backend.py")] or frames  # who called to_numpy
    where = f"{frames[-1].filename.rsplit(os.sep, 1)[1]}:{frames[-1].lineno} {frames[-1].name}" if frames else "?"
    events.append((kind, what, where))


class HostDeviceMixError(TypeError):
    """A NumPy (host) array was mixed with a device array, as real CuPy refuses."""


# ------------------------------------------------------------------ moving between host and device


def _to_device(x):
    """The NumPy array behind a device argument; scalars pass; a host array is refused."""
    if isinstance(x, ndarray):
        return x._a
    if isinstance(x, np.ndarray):
        raise HostDeviceMixError(
            f"a NumPy (host) array of shape {x.shape} given to a CuPy operation; real CuPy raises "
            "TypeError here: move it with cupy.asarray first"
        )
    if isinstance(x, (list, tuple)):
        return type(x)(_to_device(v) for v in x)
    return x


def _wrap(result):
    """Device results: NumPy arrays and the NumPy scalars of reductions become device arrays."""
    if isinstance(result, (np.ndarray, np.generic)):
        return ndarray._of(np.asarray(result))
    if isinstance(result, tuple):
        return tuple(_wrap(r) for r in result)
    return result


def _check_out(kwargs):
    out = kwargs.get("out")
    if out is not None:
        outs = out if isinstance(out, tuple) else (out,)
        if not all(isinstance(o, ndarray) for o in outs):
            raise HostDeviceMixError(f"out= must be a cupy.ndarray, got {type(outs[0]).__name__}")
        kwargs["out"] = tuple(o._a for o in outs) if isinstance(out, tuple) else out._a


def _quietly(fn, *args, **kwargs):
    """fn(*args, **kwargs) without NumPy's floating-point warnings, which CuPy never gives."""
    _refuse_while_capturing(getattr(fn, "__name__", "an array operation"))
    with np.errstate(all="ignore"):
        return fn(*args, **kwargs)


def _given_out(out):
    """What a CuPy call with out= returns: the device array(s) it wrote into."""
    return out[0] if isinstance(out, tuple) and len(out) == 1 else out


def _device_function(fn, name):
    def call(*args, **kwargs):
        out = kwargs.get("out")
        _check_out(kwargs)
        result = _quietly(
            fn, *[_to_device(a) for a in args], **{k: v if k == "out" else _to_device(v) for k, v in kwargs.items()}
        )
        return _given_out(out) if out is not None else _wrap(result)

    call.__name__ = call.__qualname__ = name
    return call


def _upload(x, dtype=None, copy=True):
    if not isinstance(x, ndarray):
        _refuse_while_capturing("a copy from the host")
    if isinstance(x, ndarray):
        if dtype is None or np.dtype(dtype) == x.dtype:
            return x.copy() if copy else x
        return x.astype(dtype)
    _count("upload", f"{type(x).__name__} {getattr(x, 'shape', '')}")
    return ndarray._of(np.array(x, dtype=dtype, copy=True))


def asarray(a, dtype=None, order=None):
    return _upload(a, dtype, copy=False)


def array(obj, dtype=None, copy=True, order="K", ndmin=0):
    return _upload(obj, dtype, copy=copy)


def asnumpy(a, stream=None):
    if isinstance(a, ndarray):
        return a.get()
    return np.asarray(a)


def get_array_module(*args):
    return _module if any(isinstance(a, ndarray) for a in args) else np


# ------------------------------------------------------------------ the device array


def _sync(what):
    def read(self, *args):
        _refuse_while_capturing(f"a read of the device ({what})")
        _count("sync", f"{what} of shape {self.shape}")
        value = self._a
        return (
            getattr(value, what)(*args) if what in ("item", "tolist", "__format__") else getattr(builtins, what)(value)
        )

    read.__name__ = f"__{what}__" if what in ("float", "int", "bool", "complex") else what
    return read


class ndarray:  # noqa: N801 (CuPy's name)
    """A device array: a NumPy array that only device operations may touch."""

    __slots__ = ("_a", "__weakref__")
    __array_priority__ = 100
    __hash__ = None

    def __init__(self, shape, dtype=float, order="C"):
        self._a = np.empty(shape, dtype=dtype, order=order)

    @classmethod
    def _of(cls, a):
        obj = object.__new__(cls)
        obj._a = a
        return obj

    def __array__(self, *args, **kwargs):
        raise TypeError(
            "Implicit conversion to a NumPy array is not allowed. "
            "Please use `.get()` to construct a NumPy array explicitly."
        )

    def __array_ufunc__(self, ufunc, method, *inputs, **kwargs):
        out = kwargs.get("out")
        _check_out(kwargs)
        result = _quietly(getattr(ufunc, method), *[_to_device(x) for x in inputs], **kwargs)
        return _given_out(out) if out is not None else _wrap(result)

    def __array_function__(self, func, types_, args, kwargs):
        ours = getattr(_module, func.__name__, None)
        if ours is None:
            raise TypeError(f"the CuPy stand-in has no cupy.{func.__name__} for numpy.{func.__name__}")
        return ours(*args, **kwargs)

    shape = property(lambda self: self._a.shape)
    dtype = property(lambda self: self._a.dtype)
    ndim = property(lambda self: self._a.ndim)
    size = property(lambda self: self._a.size)
    nbytes = property(lambda self: self._a.nbytes)
    itemsize = property(lambda self: self._a.itemsize)
    strides = property(lambda self: self._a.strides)
    flags = property(lambda self: self._a.flags)
    T = property(lambda self: ndarray._of(self._a.T))

    def __len__(self):
        return len(self._a)

    def __iter__(self):
        if self.ndim == 0:
            raise TypeError("iteration over a 0-d array")
        return (ndarray._of(self._a[i]) for i in range(len(self._a)))

    __float__, __int__, __bool__, __complex__ = _sync("float"), _sync("int"), _sync("bool"), _sync("complex")
    item, tolist, __format__ = _sync("item"), _sync("tolist"), _sync("__format__")

    def get(self, stream=None, order="C", out=None):
        _refuse_while_capturing("a copy to the host (get)")
        _count("sync", f"get of shape {self.shape}")
        return self._a.copy()

    def set(self, arr, stream=None):
        _refuse_while_capturing("a copy from the host (set)")
        _count("upload", f"set of shape {self.shape}")
        self._a[...] = arr

    def __repr__(self):
        _count("sync", "repr")
        return f"array({self._a!r}) (CuPy stand-in)"

    __str__ = __repr__

    def __getitem__(self, index):
        return _wrap_view(self._a[_index(index)])

    def __setitem__(self, index, value):
        _refuse_while_capturing("an assignment into a device array")
        if isinstance(value, np.ndarray):
            _count("upload", f"host array of shape {value.shape} assigned into a device array")
            self._a[_index(index)] = value
        else:
            self._a[_index(index)] = _to_device(value)

    def copy(self, order="C"):
        _refuse_while_capturing("a copy")
        return ndarray._of(self._a.copy(order=order))

    def astype(self, dtype, order="K", casting=None, subok=None, copy=True):
        _refuse_while_capturing("astype")
        return ndarray._of(self._a.astype(dtype, copy=copy))

    def fill(self, value):
        _refuse_while_capturing("fill")
        self._a.fill(_to_device(value))


def _wrap_view(a):
    return ndarray._of(a) if isinstance(a, np.ndarray) else _wrap(a)


def _index(index):
    """An index into a device array: device arrays and slices pass; a host array or list is uploaded."""
    if isinstance(index, tuple):
        return tuple(_index(i) for i in index)
    if isinstance(index, ndarray):
        return index._a
    if isinstance(index, (np.ndarray, list)):
        _count("upload", "a host index array")
        return np.asarray(index)
    return index


def _method(name):
    def call(self, *args, **kwargs):
        out = kwargs.get("out")
        _check_out(kwargs)
        result = _quietly(getattr(self._a, name), *[_to_device(a) for a in args], **kwargs)
        if out is not None:
            return _given_out(out)
        return _wrap_view(result) if name in VIEWS else _wrap(result)

    call.__name__ = name
    return call


VIEWS = {"reshape", "ravel", "transpose", "view", "squeeze", "swapaxes"}
for _name in sorted(VIEWS) + "sum mean max min argmax argmin all any clip dot var std round cumsum take".split():
    setattr(ndarray, _name, _method(_name))

_BINARY = "add sub mul truediv floordiv mod pow matmul and or xor lt le gt ge eq ne".split()
for _name in _BINARY:
    _op = getattr(np.ndarray, f"__{_name}__")

    def _binary(self, other, _op=_op):
        return _wrap(_quietly(_op, self._a, _to_device(other)))

    setattr(ndarray, f"__{_name}__", _binary)
    if _name not in ("lt", "le", "gt", "ge", "eq", "ne"):
        _rop, _iop = getattr(np.ndarray, f"__r{_name}__"), getattr(np.ndarray, f"__i{_name}__")

        def _reflected(self, other, _rop=_rop):
            return _wrap(_quietly(_rop, self._a, _to_device(other)))

        def _inplace(self, other, _iop=_iop):
            _quietly(_iop, self._a, _to_device(other))
            return self

        setattr(ndarray, f"__r{_name}__", _reflected)
        setattr(ndarray, f"__i{_name}__", _inplace)
for _name in ("neg", "pos", "abs", "invert"):
    _op = getattr(np.ndarray, f"__{_name}__")
    setattr(ndarray, f"__{_name}__", lambda self, _op=_op: _wrap(_quietly(_op, self._a)))


# ------------------------------------------------------------------ RawKernel: the CUDA source, run on the CPU

C_TYPES = {  # C parameter type -> (NumPy dtype, ctypes type of a scalar)
    "float": (np.float32, ctypes.c_float),
    "double": (np.float64, ctypes.c_double),
    "int": (np.int32, ctypes.c_int),
    "long long": (np.int64, ctypes.c_longlong),
    "bool": (np.bool_, ctypes.c_bool),
}
PRELUDE = """
#include <math.h>
#include <pthread.h>
#include <algorithm>
#include <thread>
#include <vector>
using std::max;
using std::min;
struct standin_dim3 { unsigned int x, y, z; };
static thread_local standin_dim3 threadIdx;
static standin_dim3 blockIdx, blockDim, gridDim;
static pthread_barrier_t standin_barrier;  // a block's threads wait here at __syncthreads()
static inline void __syncthreads() { pthread_barrier_wait(&standin_barrier); }
#define __global__
#define __shared__ static  // one block runs at a time: a block's shared memory is one static array
#define __restrict__ __restrict
"""
_BUILD_DIR = None
_LIBRARIES: dict = {}  # hash of the source -> the loaded library


def parse_signature(code, name):
    """[(C type, is pointer, parameter name)] of kernel ``name`` in CUDA source ``code``."""
    found = re.search(r'extern\s+"C"\s+__global__\s+void\s+' + re.escape(name) + r"\s*\(([^)]*)\)", code)
    if found is None:
        raise ValueError(f'no extern "C" __global__ void {name}(...) in the source')
    params = []
    for param in found.group(1).split(","):
        words = param.replace("*", " * ").replace("const ", " ").replace("__restrict__", " ").split()
        pointer = "*" in words
        words = [w for w in words if w != "*"]
        params.append((" ".join(words[:-1]), pointer, words[-1]))
    return params


def host_compiler():
    return shutil.which(os.environ.get("CXX", "c++")) or shutil.which("g++") or shutil.which("clang++")


def _build(code, name, params):
    """Compile ``code`` for the CPU with a launcher that runs every (block, thread)."""
    global _BUILD_DIR
    key = hashlib.sha256((code + name).encode()).hexdigest()[:16]
    if key in _LIBRARIES:
        return _LIBRARIES[key]
    compiler = host_compiler()
    if compiler is None:
        raise RuntimeError("the CuPy stand-in runs kernels with a host C++ compiler (c++, g++ or clang++): none found")
    declared = ", ".join(f"{t}{'*' if p else ''} {n}" for t, p, n in params)
    arguments = ", ".join(n for _, _, n in params)
    # A kernel that waits at __syncthreads() needs its block's threads to run at once: each
    # block's threads are real threads then, meeting at a barrier; other kernels run their
    # threads one after another.
    launcher = (
        f"""
extern "C" void standin_launch(unsigned int standin_grid, unsigned int standin_block, {declared}) {{
    blockDim = {{standin_block, 1, 1}}; gridDim = {{standin_grid, 1, 1}};
    for (unsigned int standin_b = 0; standin_b < standin_grid; ++standin_b) {{
        blockIdx = {{standin_b, 0, 0}};
        pthread_barrier_init(&standin_barrier, nullptr, standin_block);
        std::vector<std::thread> standin_threads;
        for (unsigned int standin_t = 0; standin_t < standin_block; ++standin_t)
            standin_threads.emplace_back([=]() {{
                threadIdx = {{standin_t, 0, 0}};
                {name}({arguments});
            }});
        for (auto& standin_thread : standin_threads) standin_thread.join();
        pthread_barrier_destroy(&standin_barrier);
    }}
}}
"""
        if "__syncthreads" in code
        else f"""
extern "C" void standin_launch(unsigned int standin_grid, unsigned int standin_block, {declared}) {{
    blockDim = {{standin_block, 1, 1}}; gridDim = {{standin_grid, 1, 1}};
    for (unsigned int standin_b = 0; standin_b < standin_grid; ++standin_b)
        for (unsigned int standin_t = 0; standin_t < standin_block; ++standin_t) {{
            blockIdx = {{standin_b, 0, 0}}; threadIdx = {{standin_t, 0, 0}};
            {name}({", ".join(n for _, _, n in params)});
        }}
}}
"""
    )
    _BUILD_DIR = _BUILD_DIR or tempfile.mkdtemp(prefix="cupy-standin-")
    source, library = (os.path.join(_BUILD_DIR, f"{key}.{ext}") for ext in ("cpp", "so"))
    with open(source, "w") as f:
        f.write(PRELUDE + code + launcher)
    command = [compiler, "-O1", "-shared", "-fPIC", "-pthread", "-ffp-contract=off", "-o", library, source]
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"the host compiler refused kernel {name}:\n{done.stderr}")
    lib = ctypes.CDLL(library)
    lib.standin_launch.restype = None
    lib.standin_launch.argtypes = [ctypes.c_uint, ctypes.c_uint] + [
        ctypes.c_void_p if p else C_TYPES[t][1] for t, p, _ in params
    ]
    _LIBRARIES[key] = lib
    return lib


def _kernel_argument(kernel, param, arg):
    """The ctypes value of one argument, after checking it against its C parameter."""
    ctype, pointer, pname = param
    dtype = np.dtype(C_TYPES[ctype][0])
    where = f"{kernel}: parameter {ctype}{'*' if pointer else ''} {pname}"
    if pointer:
        if not isinstance(arg, ndarray):
            raise TypeError(f"{where} needs a cupy.ndarray, got {type(arg).__name__}")
        if arg.dtype != dtype or not arg.flags.c_contiguous:
            raise TypeError(
                f"{where} needs a C-contiguous {dtype} array, got {arg.dtype} (contiguous: {arg.flags.c_contiguous})"
            )
        return arg._a.ctypes.data
    if not isinstance(arg, np.generic) or arg.dtype != dtype:
        raise TypeError(
            f"{where} needs a numpy.{dtype} scalar, got {type(arg).__name__} (CuPy passes a Python float as a "
            "double and a Python int as a long long: the kernel would read the wrong bytes)"
        )
    return arg.item()


class RawKernel:
    """cupy.RawKernel(code, name): here the source runs on the CPU, one block and thread after another."""

    def __init__(self, code, name, options=(), backend="nvrtc", translate_cucomplex=False, **kwargs):
        self.code, self.name, self.options = code, name, options
        self.params = parse_signature(code, name)

    def __call__(self, grid, block, args, shared_mem=0):
        grid, block = tuple(grid), tuple(block)
        if any(d != 1 for d in grid[1:] + block[1:]):
            raise NotImplementedError("the stand-in runs one-dimensional launches only")
        if len(args) != len(self.params):
            raise TypeError(f"{self.name} takes {len(self.params)} arguments, got {len(args)}")
        slots = []
        for param, arg in zip(self.params, args):
            value, (_, pointer, pname) = _kernel_argument(self.name, param, arg), param
            if pointer:  # held as (its allocation, the offset into it): a graph holds addresses, not
                owner = _memory_owner(arg._a)  # buffers, so its caller must keep them alive, or replay fails
                slots.append((pname, weakref.ref(owner), value - owner.ctypes.data))
            else:
                slots.append((pname, None, value))
        launch = (
            self.name,
            _build(self.code, self.name, self.params).standin_launch,
            int(grid[0]),
            int(block[0]),
            slots,
        )
        if _capture is None:
            _run_guarded(*launch)
            return
        stream, launches = _capture
        if _current_stream() is not stream:
            raise RuntimeError(f"{self.name}: launched on another stream than the one being captured")
        launches.append(launch)


def _memory_owner(a):
    """The NumPy array that owns ``a``'s memory (a view's base, all the way down)."""
    while isinstance(a.base, np.ndarray):
        a = a.base
    return a


def _red_zone(nbytes):
    """Bytes of 0xFF before and after an allocation of ``nbytes`` a kernel gets: as long as it."""
    return max(nbytes, 1 << 16)


def _run_guarded(name, run, grid, block, slots):
    """Run a kernel on copies of its buffers' allocations, each between two red zones of
    0xFF bytes: a kernel that writes outside an allocation (a GPU would corrupt another
    buffer or fault) is an error here, and one that reads outside it reads NaN (or -1).
    The copies go back to their allocations after the run."""
    padded, values = {}, []
    for pname, ref, value in slots:
        if ref is None:  # a scalar
            values.append(value)
            continue
        owner = ref()
        if owner is None:
            raise RuntimeError(f"graph replay: a buffer that {name} reads or writes ({pname}) was freed after capture")
        if not (owner.flags.c_contiguous and owner.flags.writeable):  # no copy to make: run it in place
            values.append(owner.ctypes.data + value)
            continue
        if id(owner) not in padded:
            raw = owner.reshape(-1).view(np.uint8)
            zone = _red_zone(raw.size)
            guarded = np.full(raw.size + 2 * zone, 0xFF, np.uint8)
            guarded[zone : zone + raw.size] = raw
            padded[id(owner)] = (raw, guarded, zone, pname)
        _, guarded, zone, _ = padded[id(owner)]
        values.append(guarded.ctypes.data + zone + value)
    run(grid, block, *values)
    for raw, guarded, zone, pname in padded.values():
        if (guarded[:zone] != 0xFF).any() or (guarded[zone + raw.size :] != 0xFF).any():
            raise RuntimeError(
                f"{name} wrote outside the allocation its parameter {pname} points into ({raw.size} bytes): "
                "on a GPU, another buffer corrupted or a fault"
            )
        raw[...] = guarded[zone : zone + raw.size]


# ------------------------------------------------------------------ streams and CUDA graphs

_capture = None  # (the stream being captured, its launches so far) while a capture is open
_streams: list = []  # the streams entered with ``with``, innermost last


def _refuse_while_capturing(what):
    """As CUDA during stream capture: only kernel launches are recorded; the stand-in,
    stricter, refuses every other operation (tinynet's graphs hold its own kernels only)."""
    if _capture is not None:
        raise RuntimeError(
            f"{what} during stream capture: a captured graph holds kernel launches only (in the CuPy "
            "stand-in, tinynet's RawKernels; real CuPy refuses cuBLAS, cuRAND and host copies)"
        )


class Stream:
    """cupy.cuda.Stream: the stand-in runs all work at once, in order; a stream matters to capture."""

    def __init__(self, null=False, non_blocking=False, ptds=False):
        self.null = null

    def __enter__(self):
        _streams.append(self)
        return self

    def __exit__(self, *exc):
        _streams.pop()

    def synchronize(self):
        _refuse_while_capturing("synchronize")

    def begin_capture(self, mode=None):
        global _capture
        if self.null:
            raise RuntimeError("the null stream cannot be captured")
        if _capture is not None:
            raise RuntimeError("a capture is already open")
        _capture = (self, [])
        counts["capture"] += 1

    def is_capturing(self):
        return _capture is not None and _capture[0] is self

    def end_capture(self):
        global _capture
        if not self.is_capturing():
            raise RuntimeError("end_capture on a stream that is not being captured")
        graph, _capture = Graph(_capture[1]), None
        return graph


def _current_stream():
    return _streams[-1] if _streams else _NULL_STREAM


_NULL_STREAM = Stream(null=True)
Stream.null = _NULL_STREAM


class Graph:
    """cupy.cuda.Graph: the captured launches, replayed in order by ``launch``."""

    def __init__(self, launches):
        self.launches = launches

    def launch(self, stream=None):
        _refuse_while_capturing("a graph's launch")
        for launch in self.launches:
            _run_guarded(*launch)


# ------------------------------------------------------------------ random numbers, the CUDA runtime


class Generator:
    """cupy.random.Generator: draws on the device (here NumPy's generator, results as device arrays)."""

    def __init__(self, seed=None):
        self._rng = np.random.default_rng(seed)
        self.bit_generator = types.SimpleNamespace()  # CuPy's state is not a dict: tinynet does not save it

    def random(self, size=None, dtype=np.float64, out=None):
        return _wrap(self._rng.random(size, dtype=dtype))

    def standard_normal(self, size=None, dtype=np.float64, out=None):
        return _wrap(self._rng.standard_normal(size, dtype=dtype))

    def uniform(self, low=0.0, high=1.0, size=None, dtype=np.float64):
        return _wrap(self._rng.uniform(low, high, size).astype(dtype))

    def integers(self, low, high=None, size=None, dtype=np.int64, endpoint=False):
        return _wrap(self._rng.integers(low, high, size, dtype=dtype, endpoint=endpoint))


def _runtime():
    return types.SimpleNamespace(
        getDeviceCount=lambda: 1,
        runtimeGetVersion=lambda: 12090,
        driverGetVersion=lambda: 12090,
        getDeviceProperties=lambda device: {"name": b"CuPy stand-in (NumPy on the CPU)", "major": 9, "minor": 0},
        CUDARuntimeError=RuntimeError,
    )


# ------------------------------------------------------------------ the module: CuPy's names, no others

FUNCTIONS = """abs absolute add subtract multiply divide true_divide negative power sqrt square exp log log1p
expm1 tanh sign maximum minimum clip where isnan isfinite isinf matmul dot sum mean max min amax amin argmax
argmin round around floor ceil concatenate stack pad take_along_axis broadcast_to zeros_like ones_like
empty_like full_like reshape transpose ravel ascontiguousarray logical_and logical_or logical_not equal
not_equal greater greater_equal less less_equal all any count_nonzero einsum cumsum sort argsort var std
arange zeros ones empty full eye allclose array_equal squeeze expand_dims shape ndim size""".split()
CONSTANTS = "float16 float32 float64 int8 int16 int32 int64 uint8 bool_ nan inf pi newaxis dtype".split()


def _missing(name):
    raise AttributeError(
        f"the CuPy stand-in has no cupy.{name}: if CuPy has it and tinynet needs it, add it to tests/cupy_standin.py"
    )


def _strict_namespace(name, members):
    module = types.ModuleType(name)
    module.__dict__.update(members)
    module.__getattr__ = lambda attr: _missing(f"{name[5:]}.{attr}" if "." in name else attr)
    return module


def make_module():
    """A fresh module ``cupy`` backed by NumPy (see the module docstring)."""
    members = {n: _device_function(getattr(np, n), n) for n in FUNCTIONS}
    members.update({n: getattr(np, n) for n in CONSTANTS})
    members.update(
        __version__="14.2.0+standin",
        ndarray=ndarray,
        asarray=asarray,
        array=array,
        asnumpy=asnumpy,
        get_array_module=get_array_module,
        RawKernel=RawKernel,
        random=_strict_namespace("cupy.random", {"default_rng": Generator, "Generator": Generator}),
        cuda=_strict_namespace(
            "cupy.cuda",
            {
                "runtime": _strict_namespace("cupy.cuda.runtime", vars(_runtime())),
                "Stream": Stream,
                "Graph": Graph,
                "get_current_stream": _current_stream,
            },
        ),
        lib=_strict_namespace(
            "cupy.lib",
            {"stride_tricks": _strict_namespace("cupy.lib.stride_tricks", {"as_strided": _as_strided})},
        ),
    )
    global _module
    _module = _strict_namespace("cupy", members)
    return _module


def _as_strided(x, shape=None, strides=None):
    return ndarray._of(np.lib.stride_tricks.as_strided(_to_device(x), shape, strides))


_module = None
