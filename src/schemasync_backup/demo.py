"""The main job on an embedded default: a throwaway MariaDB, a sample schema, and the library at work.

capture -> back up (compressed, encrypted, on local storage, with the data the migration would
destroy) -> validate -> restore-test -> a migration that goes wrong -> rollback plan -> execute ->
verify, and the dropped column's values are back.
Run it with ``python -m schemasync_backup.demo`` (or the ``schemasync-demo`` script).
"""

from __future__ import annotations

import argparse
import tempfile
import time

from schemasync_backup.capture.connection import open_source
from schemasync_backup.model.snapshot import Snapshot
from schemasync_backup.plugins.crypto import EncryptionKey
from schemasync_backup.rollback.planner import RollbackPlanner
from schemasync_backup.store.store import BackupStore
from schemasync_backup.testing.samples import load_sample
from schemasync_backup.testing.sandbox import ThrowawayServer
from schemasync_backup.validate.validator import Validator


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sample", default="shop", help="which bundled sample schema to load")
    parser.add_argument("--storage", help="fsspec URL for the backups (default: a temp dir)")
    parser.add_argument("--ddl", action="store_true", help="print the whole DDL script")
    args = parser.parse_args(argv)

    with ThrowawayServer() as server, tempfile.TemporaryDirectory(prefix="schemasync-backups-") as scratch:
        print(f"started a throwaway MariaDB on 127.0.0.1:{server.port}")
        load_sample(server.dsn, "shop", args.sample)
        with open_source(server.dsn, "shop") as connection, connection.cursor() as cursor:
            cursor.execute(_SEED)

        started = time.perf_counter()
        snapshot = Snapshot.capture(server.dsn, "shop")
        print(f"\n== capture ({(time.perf_counter() - started) * 1000:.0f} ms)\n{snapshot}")
        script = snapshot.to_sql()
        shown = script if args.ddl else "\n".join(script.splitlines()[:24]) + "\n-- ... (--ddl shows all)"
        print(f"\n== DDL that recreates it\n{shown}")

        key = EncryptionKey.generate()
        store = BackupStore.open(args.storage or scratch, compression="lz4", encryption_keys=key)
        # What a migration tool calls before every migration: the schema, and the data it would destroy.
        info = store.create(server.dsn, "shop", description="demo", tags={"source": "demo"}, data="at-risk",
                            migration=_MIGRATION)
        print(f"\n== backup {info.id} in {store.url}\n   {info.raw_size} bytes raw, {info.stored_size} stored "
              f"({info.compression}, {info.encryption} with key {info.key_id}), checksum {info.checksum[:16]}...\n"
              f"   {info.data}")
        before = _profiles(server.dsn)

        validator = Validator(store)
        result = validator.validate(info.id)
        print(f"== validate: {'valid' if result.valid else 'INVALID'} "
              f"({result.objects_checked} objects, {result.bytes_checked} bytes checked, "
              f"{len(result.warnings)} DDL statements sqlglot cannot parse)")
        restored = validator.restore_test(info.id, server.dsn)
        print(f"== restore test into a scratch database: schema hash {restored.restored_hash[:16]}... "
              f"{'identical' if restored.passed else 'DIFFERENT'}")

        with open_source(server.dsn, "shop") as connection, connection.cursor() as cursor:
            for statement in _MIGRATION:
                cursor.execute(statement)
        print("\n== a migration ran:\n   " + ";\n   ".join(_MIGRATION))
        planner = RollbackPlanner(store)
        plan = planner.plan(server.dsn, info.id)
        print(f"\n== rollback plan\n{plan.summary()}\n\n{plan.to_sql()}")
        outcome = planner.execute(server.dsn, plan, force=True)
        check = planner.validate(server.dsn, info.id)
        print(f"== executed {outcome.steps_run} steps (the live state was backed up first as "
              f"{outcome.pre_rollback_backup_id}); live schema hash {check.live_hash[:16]}... "
              f"{'matches the backup' if check.matches else 'DIFFERS'}")
        after = _profiles(server.dsn)
        print("== the dropped column customer.profile is back, with its values:\n   "
              + "\n   ".join(f"{email}: {profile}" for email, profile in after))
        return 0 if result.valid and restored.passed and check.matches and after == before else 1


def _profiles(dsn: str) -> list[tuple[str, str | None]]:
    with open_source(dsn, "shop") as connection, connection.cursor() as cursor:
        cursor.execute("SELECT email, profile FROM customer WHERE email <> 'ada@example.com' ORDER BY id")
        return [(str(email), None if profile is None else str(profile)) for email, profile in cursor.fetchall()]


_SEED = ("INSERT INTO customer (email, full_name, profile) VALUES "
         "('grace@example.com', 'Grace Hopper', '{\"tier\": \"gold\", \"newsletter\": true}'), "
         "('linus@example.com', 'Linus', NULL), ('ada.l@example.com', 'Ada Lovelace', '{\"tier\": \"silver\"}')")


_MIGRATION = (
    "ALTER TABLE customer ADD COLUMN loyalty_tier ENUM('bronze','silver') NULL AFTER email, "
    "DROP INDEX ft_customer_name, DROP COLUMN profile",
    "INSERT INTO customer (email, full_name, loyalty_tier) VALUES ('ada@example.com', 'Ada', 'silver')",
    "ALTER TABLE order_line DROP FOREIGN KEY fk_line_product",
    "CREATE OR REPLACE VIEW live_product AS SELECT sku, title FROM product WHERE status = 'live'",
    "DROP TRIGGER order_line_after_insert",
)


if __name__ == "__main__":
    raise SystemExit(main())
