"""The layout's contracts (pyproject.toml [tool.importlinter]) hold: CI fails on a broken one."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_import_contracts_are_kept() -> None:
    command = shutil.which("lint-imports", path=str(Path(sys.executable).parent)) or "lint-imports"
    done = subprocess.run([command, "--no-cache"], cwd=ROOT, capture_output=True, text=True, check=False, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "0 broken" in done.stdout


#: Snapshot's front doors (capture, to_json/from_json, to_sql, schema_hash, the summary) import their
#: modules lazily inside the methods: the one named exception (docs/architecture.md). Capture's
#: fingerprints are the reader's own part (what an incremental capture may take from a known snapshot).
FRONT_DOORS = ("schemasync_backup.model", "schemasync_backup.capture.reader", "schemasync_backup.capture.fingerprints",
               "schemasync_backup.ddl", "schemasync_backup.formats.snapshot_json")


def test_no_import_cycle_but_the_snapshot_front_doors() -> None:
    import itertools

    import grimp

    graph = grimp.build_graph("schemasync_backup", exclude_type_checking_imports=True)
    modules = sorted(name for name in graph.modules if "." in name)
    cycles = [(a, b) for a, b in itertools.combinations(modules, 2)
              if not (a.startswith(b) or b.startswith(a))
              and graph.find_shortest_chain(a, b) and graph.find_shortest_chain(b, a)]
    assert [pair for pair in cycles if not all(name.startswith(FRONT_DOORS) for name in pair)] == []
