"""The README's first command: the main job on a throwaway MariaDB, end to end."""

from __future__ import annotations

import subprocess
import sys


def test_demo_runs_backup_migration_rollback_and_verify() -> None:
    result = subprocess.run([sys.executable, "-m", "schemasync_backup.demo"], capture_output=True, text=True,
                            timeout=300, check=False)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    for evidence in ("== capture", "== backup backup-", "== validate: valid", "identical",
                     "== rollback plan", "matches the backup"):
        assert evidence in result.stdout
    assert "Falling back to parsing" not in result.stdout + result.stderr
