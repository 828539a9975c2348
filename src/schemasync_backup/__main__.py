"""``python -m schemasync_backup``: the same as the ``mysql-schema-sync`` command."""

from __future__ import annotations

from schemasync_backup.cli.main import main

raise SystemExit(main())
