"""The package's layout holds what ARCHITECTURE.md says of it.

- the top of ``tinynet/`` stays small (the textbook in the eye, the machinery in sub-packages);
- the textbook (layers, losses, optimizers, ``Sequential``) imports only the bottom layer, the
  rest of the textbook, its own mixins, and the one door into the machinery, ``engine/loop.py``;
- no module writes a private attribute of an object it does not own (``a.b._c = ...``), and
  only ``engine/twins.py`` binds methods on objects at run time;
- every fast twin is declared in ``engine/twins.py``'s table;
- no import cycles; no function over 60 lines.

Each check reads the source with ``ast`` and fails with the file, the line and the rule.
"""

from __future__ import annotations

import ast
import importlib
import inspect
import pathlib

import pytest

PACKAGE = pathlib.Path(__file__).resolve().parent.parent / "tinynet"
MAX_TOP_LEVEL = 24
MAX_FUNCTION_LINES = 60

TEXTBOOK = {
    "tinynet.layers",
    "tinynet.layers.core",
    "tinynet.layers.activation",
    "tinynet.layers.conv",
    "tinynet.layers.dropout",
    "tinynet.layers.input",
    "tinynet.layers.normalization",
    "tinynet.losses",
    "tinynet.optimizers",
    "tinynet.sequential",
}
BOTTOM = {"tinynet.backend", "tinynet.validation", "tinynet.initializers", "tinynet.regularizers", "tinynet.schedules"}
MIXINS = {  # the half of a textbook class that is not math: Keras's methods, state handling
    "tinynet.layers.core": {"tinynet.layers.api"},
    "tinynet.sequential": {"tinynet.engine.keras_api"},
    "tinynet.optimizers": {"tinynet.engine.optimizer_state"},
}
DOOR = "tinynet.engine.loop"
BOTTOM_EXCEPTIONS = {  # (module, import): why
    ("tinynet.backend", "tinynet.engine.kernels"): "the GPU probe runs one of tinynet's kernels (a leaf module)",
}


def module_name(path: pathlib.Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


MODULES = {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def defined_in(source: str, name: str) -> str:
    """The module that ``from source import name`` really brings in: the submodule ``name``,
    the module a re-exported name is (``from .engine.loop import twins``), or the module that
    defines a re-exported class or function; else ``source`` itself."""
    if f"{source}.{name}" in MODULES:
        return f"{source}.{name}"
    obj = getattr(importlib.import_module(source), name, None)
    if inspect.ismodule(obj):
        return obj.__name__
    home = getattr(obj, "__module__", None) if inspect.isclass(obj) or inspect.isfunction(obj) else None
    return home if home in MODULES else source


def imports(name: str):
    """(imported module, line) for every import in module ``name``, at any depth (function-level
    ones too), relative ones resolved; ``from package import name`` counts as what ``name``
    really is (:func:`defined_in`), so a name re-exported by the door is not the door."""
    path = MODULES[name]
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.startswith("tinynet"):
                    yield alias.name, node.lineno
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - node.level + 1]
                source = ".".join(base + ([node.module] if node.module else []))
            else:
                source = node.module or ""
            if not source.startswith("tinynet"):
                continue
            for alias in node.names:
                yield defined_in(source, alias.name), node.lineno


def where(name, line):
    return f"{MODULES[name].relative_to(PACKAGE.parent)}:{line}"


def test_the_top_of_the_package_stays_small():
    entries = sorted(p.name for p in PACKAGE.iterdir() if p.name not in ("__init__.py", "__main__.py", "__pycache__"))
    assert len(entries) <= MAX_TOP_LEVEL, (
        f"tinynet/ has {len(entries)} entries at its top, more than {MAX_TOP_LEVEL}: {entries}. "
        "Machinery belongs in tinynet/engine/ (training) or tinynet/files/ (files)."
    )
    assert {"engine", "files", "layers", "losses.py", "optimizers.py", "sequential.py"} <= set(entries)


def textbook_rule_breaks(modules, imports_of):
    """Every import of a textbook module that is not the textbook, the bottom layer, its own
    mixins or the door, as "file:line imports module" (for the test, and the test of the test)."""
    broken = []
    for name in sorted(modules):
        allowed = TEXTBOOK | BOTTOM | MIXINS.get(name, set()) | {DOOR}
        for target, line in imports_of(name):
            if target not in allowed:
                broken.append(
                    f"{where(name, line)}: the textbook module {name} imports {target}; it may import only "
                    f"the textbook, the bottom layer ({', '.join(sorted(BOTTOM))}), its own mixins "
                    f"({', '.join(sorted(MIXINS.get(name, ()))) or 'none'}) and the one door, {DOOR}"
                )
    return broken


def test_the_textbook_reaches_the_machinery_only_through_the_one_door():
    broken = textbook_rule_breaks(TEXTBOOK, imports)
    assert broken == [], "the textbook imports the machinery past the one door:\n" + "\n".join(broken)


def test_the_layout_check_names_an_import_that_breaks_the_rule():
    fake = {"tinynet.losses": [("tinynet.engine.twins", 7)]}
    broken = textbook_rule_breaks(fake, lambda name: fake[name])
    assert len(broken) == 1 and "tinynet/losses.py:7" in broken[0] and "tinynet.engine.twins" in broken[0]


def test_a_name_re_exported_by_the_door_is_not_the_door():
    assert defined_in("tinynet.engine.loop", "twins") == "tinynet.engine.twins"  # a module the door imports
    assert defined_in("tinynet.engine.loop", "FlatParameters") == "tinynet.engine.flat"  # a class it imports
    assert defined_in("tinynet.engine.loop", "Loop") == "tinynet.engine.loop"  # its own
    assert defined_in("tinynet.engine", "loop") == "tinynet.engine.loop"  # a submodule


def test_the_bottom_layer_imports_only_the_bottom_layer():
    broken = [
        f"{where(name, line)}: {name} is the bottom layer but imports {target}"
        for name in sorted(BOTTOM)
        for target, line in imports(name)
        if target not in BOTTOM and (name, target) not in BOTTOM_EXCEPTIONS
    ]
    assert broken == []


def test_the_one_door_is_what_sequential_fit_uses():
    targets = {target for target, _ in imports("tinynet.sequential")}
    assert DOOR in targets
    assert not {t for t in targets if t.startswith("tinynet.engine.")} - {DOOR, "tinynet.engine.keras_api"}


COPY_METHODS = ("__deepcopy__", "__copy__", "__setstate__")  # a class filling in a copy of itself


def _owners(tree):
    """{id(node): the names that node may write private attributes on}: ``self``/``cls`` inside a
    method of a class (and the functions nested in it), nothing in a module-level function."""
    owners = {}

    def visit(node, names, in_copy):
        for child in ast.iter_child_nodes(node):
            inner, copying = names, in_copy
            if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef)):
                method = isinstance(node, ast.ClassDef) and child.args.args
                inner = names | ({child.args.args[0].arg} if method else set())
                copying = in_copy or (isinstance(node, ast.ClassDef) and child.name in COPY_METHODS)
            owners[id(child)] = (inner, copying)
            visit(child, inner, copying)

    visit(tree, frozenset(), False)
    return owners


def _attribute_dict(node) -> bool:
    """Whether ``node`` is ``vars(x)`` or ``x.__dict__``: an object's attributes as a dict."""
    is_vars = isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "vars"
    return is_vars or (isinstance(node, ast.Attribute) and node.attr == "__dict__")


def private_writes(source: str, filename: str):
    """Each ``a.b._c = ...`` (or ``+=``, ``del``): a private attribute written on anything but the
    ``self``/``cls`` of a class's own method; each write into ``vars(x)[...]`` or ``x.__dict__[...]``
    (but a class's copy method filling in its copy); each ``setattr``/``delattr`` on anything but
    ``self``; each ``MethodType``."""
    tree = ast.parse(source, filename)
    owners, found = _owners(tree), []
    for node in ast.walk(tree):
        own, copying = owners.get(id(node), (frozenset(), False))
        targets = []
        if isinstance(node, (ast.Assign, ast.Delete)):
            targets = node.targets
        elif isinstance(node, (ast.AugAssign, ast.AnnAssign)):
            targets = [node.target]
        for target in targets:
            for e in ast.walk(target):
                if isinstance(e, ast.Attribute) and e.attr.startswith("_") and not e.attr.startswith("__"):
                    if not (isinstance(e.value, ast.Name) and e.value.id in own):
                        found.append((node.lineno, f"writes {ast.unparse(e)}, a private attribute of another object"))
                if isinstance(e, ast.Subscript) and _attribute_dict(e.value) and not copying:
                    found.append((node.lineno, f"writes {ast.unparse(e)}, into another object's attributes"))
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in ("setattr", "delattr"):
            owner = node.args[0] if node.args else None
            if not (isinstance(owner, ast.Name) and owner.id == "self"):
                found.append((node.lineno, f"{node.func.id} on {ast.unparse(owner)}: a run-time swap"))
        if isinstance(node, ast.Attribute) and node.attr == "MethodType":
            found.append((node.lineno, "binds a method at run time (types.MethodType)"))
    return found


SWAP_OWNER = "tinynet.engine.twins"


def test_no_module_writes_another_objects_private_state_or_swaps_methods_but_the_one_owner():
    broken = [
        f"{where(name, line)}: {what}"
        for name, path in MODULES.items()
        if name != SWAP_OWNER
        for line, what in private_writes(path.read_text(), str(path))
    ]
    assert broken == [], (
        "a module writes another object's private state, or swaps a method (only tinynet/engine/twins.py "
        "binds methods at run time; what a fast twin needs, the layer gives through a named method):\n"
        + "\n".join(broken)
    )


@pytest.mark.parametrize(
    "source",
    [
        "def f(layer, y):\n    layer.activation._y = y\n",
        "def f(other):\n    other._count += 1\n",
        "def f(obj, fn):\n    setattr(obj, 'forward', fn)\n",
        "import types\ndef f(obj, fn):\n    obj.forward = types.MethodType(fn, obj)\n",
        "def twin(self, x):\n    self._x = x\n",  # a module-level function is not the object's own method
        "def f(layer):\n    vars(layer)['_x'] = 1\n",
        "def f(layer):\n    layer.__dict__['_y'] = 2\n",
    ],
)
def test_the_private_write_check_catches(source):
    assert len(private_writes(source, "<test>")) == 1


def test_the_private_write_check_lets_an_object_write_its_own_state():
    source = (
        "class A:\n"
        "    def f(self, y):\n"
        "        self._y = y\n"
        "        self.b = 1\n"
        "        def inner():\n"
        "            self._z = 2\n"
        "    def __deepcopy__(self, memo):\n"
        "        twin = A()\n"
        "        vars(twin)['_y'] = self._y\n"
    )
    assert private_writes(source, "<t>") == []


TWIN_HELPERS = {"runs_textbook", "forget_work_arrays", "kept_state", "Scratch"}  # public, but not twins


def test_every_fast_twin_is_declared_in_the_one_table():
    from tinynet.engine import twins, twins_fused, twins_inplace

    declared = {row.twin for row in twins.TWINS}
    for module in (twins_inplace, twins_fused):
        for name, fn in vars(module).items():
            if not callable(fn) or getattr(fn, "__module__", None) != module.__name__ or name.startswith("_"):
                continue
            equals = (fn.__doc__ or "").split(".")[0]
            assert fn in declared or name in TWIN_HELPERS, (
                f"{module.__name__}.{name} ({equals}) is a twin missing from twins.TWINS (or a helper: "
                "name it in TWIN_HELPERS, or make it private)"
            )
    for row in twins.TWINS:
        assert callable(getattr(row.cls, row.method)), f"{row.cls.__name__}.{row.method} is not a textbook method"


def import_cycles(graph):
    """Every cycle of ``graph`` ({module: {imported module: line}}), each as a list of modules."""
    cycles, done = [], set()

    def visit(name, path):
        for target in sorted(graph.get(name, {})):
            if target in path:
                cycles.append(path[path.index(target) :] + [target])
            elif target not in done:
                visit(target, path + [target])
        done.add(name)

    for name in sorted(graph):
        if name not in done:
            visit(name, [name])
    return cycles


def test_no_import_cycles():
    graph = {name: dict(imports(name)) for name in MODULES}
    graph["tinynet"] = {}  # tinynet/__init__ imports the public API: every module it names imports after it
    described = [
        " -> ".join(f"{a} ({where(a, graph[a][b])})" for a, b in zip(cycle, cycle[1:])) + f" -> {cycle[-1]}"
        for cycle in import_cycles(graph)
    ]
    assert described == [], "import cycles:\n" + "\n".join(described)


def test_the_cycle_check_finds_a_cycle():
    assert import_cycles({"a": {"b": 1}, "b": {"c": 2}, "c": {"a": 3}}) == [["a", "b", "c", "a"]]
    assert import_cycles({"a": {"b": 1}, "b": {}}) == []


def test_no_function_over_60_lines():
    long = [
        f"{where(name, node.lineno)}: {node.name} is {node.end_lineno - node.lineno + 1} lines"
        for name, path in MODULES.items()
        for node in ast.walk(ast.parse(path.read_text()))
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))
        and node.end_lineno - node.lineno + 1 > MAX_FUNCTION_LINES
    ]
    assert long == [], f"functions over {MAX_FUNCTION_LINES} lines (split them by concern):\n" + "\n".join(long)


@pytest.mark.parametrize("old", ["tinynet.fast", "tinynet.training", "tinynet.keras_compat", "tinynet.model"])
def test_a_moved_module_still_imports_under_its_old_name_with_a_warning(old):
    import importlib
    import subprocess
    import sys

    from tinynet.engine import moved

    new = importlib.import_module(moved.MOVED[old])
    short = old.rpartition(".")[2]
    code = (  # a fresh interpreter: the first import under the old name is the one that warns
        "import warnings, importlib\n"
        "warnings.simplefilter('error')\n"
        "import tinynet\n"
        "warnings.simplefilter('always')\n"
        "with warnings.catch_warnings(record=True) as seen:\n"
        f"    import {old} as by_import\n"
        f"    from tinynet import {short} as by_from\n"
        f"    by_attribute = tinynet.{short}\n"
        f"new = importlib.import_module({moved.MOVED[old]!r})\n"
        "assert by_import is by_from is by_attribute is new, (by_import, new)\n"
        f"assert new.__spec__.name == {moved.MOVED[old]!r}, new.__spec__\n"
        "assert seen and all(w.category is DeprecationWarning for w in seen), seen\n"
        "print(seen[0].message)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=PACKAGE.parent)
    assert done.returncode == 0, done.stderr
    assert f"{old} is now {new.__name__}" in done.stdout


def test_an_unknown_attribute_of_tinynet_is_still_an_attribute_error():
    import tinynet

    with pytest.raises(AttributeError, match="no attribute 'nonsense'"):
        tinynet.nonsense  # noqa: B018
