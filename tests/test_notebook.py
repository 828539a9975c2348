"""docs/walkthrough.ipynb runs from its first cell to its last, and its results show as HTML.

It runs in a real kernel (nbclient) in a temp dir, against the session's throwaway server: the cell
tagged ``server`` (which starts a server of its own) is swapped for the session's DSN, and the cell
tagged ``cleanup`` (which stops it) for removing the notebook's backups.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import nbformat
import pymysql
import pytest
from nbclient import NotebookClient

import schemasync_backup
from schemasync_backup.sql.quoting import quote_identifier
from schemasync_backup.testing.sandbox import ThrowawayServer

NOTEBOOK = Path(__file__).resolve().parents[1] / "docs" / "walkthrough.ipynb"
#: The cells that end with a result object: each must show as HTML.
SHOWN = {"snapshot", "info", "validation", "plan", "difference", "outcome", "check"}


def _tagged(notebook: nbformat.NotebookNode, tag: str) -> nbformat.NotebookNode:
    [cell] = [cell for cell in notebook.cells if tag in cell.metadata.get("tags", [])]
    return cell


def test_the_committed_notebook_has_no_outputs() -> None:
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    nbformat.validate(notebook)
    code = [cell for cell in notebook.cells if cell.cell_type == "code"]
    assert code and all(cell.outputs == [] and cell.execution_count is None for cell in code)


@pytest.fixture
def database(root: pymysql.connections.Connection) -> Iterator[str]:
    name = f"walkthrough_{os.getpid()}"
    yield name
    with root.cursor() as cursor:
        cursor.execute(f"DROP DATABASE IF EXISTS {quote_identifier(name)}")


@pytest.mark.server
@pytest.mark.timeout(600)
def test_the_walkthrough_runs(mariadb: ThrowawayServer, database: str, tmp_path: Path,
                              monkeypatch: pytest.MonkeyPatch) -> None:
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    _tagged(notebook, "server").source = f"dsn, database = {mariadb.dsn!r}, {database!r}"
    _tagged(notebook, "cleanup").source = "import shutil\n\nshutil.rmtree(storage)"
    # The kernel imports the package the tests import (a worktree's src/ or the installed one).
    package_root = str(Path(schemasync_backup.__file__).resolve().parents[1])
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [package_root, os.environ.get("PYTHONPATH")])))

    NotebookClient(notebook, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}},
                   raise_on_iopub_timeout=True).execute()

    code = [cell for cell in notebook.cells if cell.cell_type == "code"]
    assert all(cell.execution_count is not None for cell in code)
    assert [output for cell in code for output in cell.outputs if output.output_type == "error"] == []
    shown = {cell.source.splitlines()[-1]: cell for cell in code if cell.source.splitlines()[-1] in SHOWN}
    assert set(shown) == SHOWN
    for name, cell in shown.items():
        pages = [output.data["text/html"] for output in cell.outputs if "text/html" in output.get("data", {})]
        assert len(pages) == 1 and 'class="schemasync ' in pages[0], name
    assert "steps run" in shown["outcome"].outputs[0].data["text/html"]
    assert ": matches" in shown["check"].outputs[0].data["text/html"]
