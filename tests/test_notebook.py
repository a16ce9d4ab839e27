"""examples/backprop_walkthrough.ipynb runs top to bottom, so the chapter cannot drift from the code.

Every comparison in the notebook is an assert: a cell that raises fails the test. It runs
on the synthetic stand-in it makes itself (TINYNET_DATA_DIR unset) and, when
TINYNET_DATA_DIR is set (CI sets it when the MNIST files are there), on the real data.
The kernel must be this interpreter: nbclient's "python3" is ipykernel's own kernel
spec, whose "python" jupyter_client replaces with sys.executable; the last cell we
add checks that.
"""

import json
import os
import sys

import pytest

if os.environ.get("CI"):  # CI must run the notebook: a missing package fails here instead of skipping
    import ipykernel  # noqa: F401
    import matplotlib  # noqa: F401
    import nbclient
    import nbformat
else:
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    pytest.importorskip("ipykernel")
    pytest.importorskip("matplotlib")

EXAMPLES = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "examples")
NOTEBOOK = os.path.join(EXAMPLES, "backprop_walkthrough.ipynb")
TIMEOUT_S = 300  # per cell; the whole notebook takes about 5 s on synthetic data, 20 s on MNIST


def test_the_committed_notebook_has_no_outputs():
    """Outputs stay out of git: a learner's run never shows up as a diff (clear them before committing)."""
    nb = nbformat.read(NOTEBOOK, as_version=4)
    nbformat.validate(nb)
    code = [(k, cell) for k, cell in enumerate(nb.cells) if cell.cell_type == "code"]
    dirty = [k for k, cell in code if cell.outputs or cell.execution_count is not None]
    assert not dirty, f"cells {dirty} hold outputs: clear them (Jupyter: Edit > Clear All Outputs) and commit again"


def execute(monkeypatch, data_dir):
    if data_dir is None:
        monkeypatch.delenv("TINYNET_DATA_DIR", raising=False)
    else:
        monkeypatch.setenv("TINYNET_DATA_DIR", data_dir)
    nb = nbformat.read(NOTEBOOK, as_version=4)
    nb.cells.append(nbformat.v4.new_code_cell("import json, sys\nprint(json.dumps(sys.prefix))"))
    client = nbclient.NotebookClient(
        nb, timeout=TIMEOUT_S, kernel_name="python3", resources={"metadata": {"path": EXAMPLES}}
    )
    client.execute()  # raises CellExecutionError, with the cell and its traceback, on any error
    prefix = json.loads(nb.cells[-1].outputs[0]["text"])
    assert prefix == sys.prefix, f"the notebook ran in {prefix}, not in this environment ({sys.prefix})"
    return "".join(output.get("text", "") for cell in nb.cells if cell.cell_type == "code" for output in cell.outputs)


def test_the_notebook_runs_on_synthetic_data(monkeypatch):
    text = execute(monkeypatch, None)
    assert "Data: TINYNET_DATA_DIR is not set" in text
    assert "tinynet's Adam step equals the formula" in text


@pytest.mark.skipif(not os.environ.get("TINYNET_DATA_DIR"), reason="TINYNET_DATA_DIR is not set")
def test_the_notebook_runs_on_mnist(monkeypatch):
    text = execute(monkeypatch, os.environ["TINYNET_DATA_DIR"])
    assert "Data: the real MNIST" in text
