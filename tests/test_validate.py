"""Validator on real storage: damage is always found, named, and salvaged where possible."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from conftest import CORPUS, corpus_entries, load_corpus, run_sql
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from schemasync_backup.errors import EncryptionKeyError, IntegrityError
from schemasync_backup.plugins.crypto import EncryptionKey
from schemasync_backup.sql.quoting import parse_problem
from schemasync_backup.store.store import BackupStore
from schemasync_backup.testing.samples import load_sample
from schemasync_backup.testing.sandbox import ThrowawayServer
from schemasync_backup.validate import parse_checks
from schemasync_backup.validate.parse_checks import ParseCache
from schemasync_backup.validate.validator import BackupValidationError, RecoveryError, ValidationProgress, Validator

pytestmark = pytest.mark.server
KEY = EncryptionKey.generate()


@pytest.fixture(scope="module")
def shop(mariadb: ThrowawayServer) -> str:
    load_sample(mariadb.dsn, "validate_shop")
    return "validate_shop"


@pytest.fixture(scope="module")
def sakila(mariadb: ThrowawayServer) -> str:
    entries = {name: (file, env) for name, file, env in corpus_entries()}
    if "sakila" not in entries:
        pytest.skip(f"corpus not found at {CORPUS}")
    load_corpus(mariadb, "validate_sakila", *entries["sakila"])
    return "validate_sakila"


def test_intact_backup_validates(storage_url: Any, mariadb: ThrowawayServer, shop: str) -> None:
    store = BackupStore.open(storage_url.url, storage_options=storage_url.options, encryption_keys=KEY)
    info = store.create(mariadb.dsn, shop)
    validator = Validator(store)
    result = validator.validate(info.id)
    assert result.valid and result.checksum_valid and not result.errors, result.errors
    assert result.objects_checked == 2 and result.bytes_checked == info.stored_size
    assert validator.integrity_check(info.id).valid
    assert store.get(info.id).status == "COMPLETED"
    assert [r.valid for r in validator.validate_all()] == [True]
    result.raise_for_errors()


# --- damage, chosen by hypothesis --------------------------------------------------------------

DAMAGE = st.one_of(
    st.tuples(st.just("flip"), st.integers(0, 10**9), st.integers(1, 255)),
    st.tuples(st.just("truncate"), st.integers(0, 10**9), st.just(0)),
    st.tuples(st.just("delete"), st.just(0), st.just(0)),
    st.tuples(st.just("manifest"), st.integers(0, 10**9), st.integers(1, 255)),
)


@pytest.fixture(scope="module")
def damage_lab(mariadb: ThrowawayServer, sakila: str, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    root = tmp_path_factory.mktemp("damage-lab")
    # Small frames so a sakila snapshot spans several and damage hits some tables, not all.
    info = BackupStore.open(str(root), encryption_keys=KEY, frame_size=8192).create(mariadb.dsn, sakila)
    return root, info.id


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(damage=DAMAGE)
def test_damage_is_always_found(damage_lab: tuple[Path, str], tmp_path_factory: pytest.TempPathFactory,
                                damage: tuple[str, int, int]) -> None:
    source, backup_id = damage_lab
    root = tmp_path_factory.mktemp("damaged")
    subprocess.run(["cp", "-a", f"{source}/.", str(root)], check=True)
    store = BackupStore.open(str(root), encryption_keys=KEY)
    record = store.manifest(backup_id).snapshot_object
    object_file = root / "objects" / record.path
    manifest_file = root / "manifests" / f"{backup_id}.json"
    kind, where, mask = damage
    target = manifest_file if kind == "manifest" else object_file
    data = bytearray(target.read_bytes())
    if kind in ("flip", "manifest"):
        data[where % len(data)] ^= mask
        target.write_bytes(bytes(data))
    elif kind == "truncate":
        target.write_bytes(bytes(data[: where % len(data)]))
    else:
        target.unlink()

    validator = Validator(store)
    quick, full = validator.integrity_check(backup_id), validator.validate(backup_id)
    if kind == "manifest" and full.valid:
        # A flip inside JSON whitespace indentation can still leave an equal document; nothing else may pass.
        assert store.manifest(backup_id) is not None
        return
    assert not quick.valid and not full.valid
    assert store.status_of(backup_id) == "CORRUPTED"
    with pytest.raises(BackupValidationError, match="backup validation failed"):
        full.raise_for_errors()
    if kind == "manifest":
        assert not full.checksum_valid
        assert any(words in str(full.errors[0]) for words in ("checksum mismatch", "damaged manifest", "not a backup",
                                                                 "belongs to backup"))
        return
    assert all(error.object_path == str(object_file) for error in full.errors if error.object_path), full.errors
    if kind == "flip":
        # The finding names the schema objects in the damaged frame, and recovery keeps the rest.
        assert full.errors[0].schema_objects, full.errors
        try:
            report = validator.partial_recovery(backup_id)
        except RecoveryError:
            # The flip hit what every frame needs (the object header): nothing to save, and nothing is written.
            assert [info.id for info in store.list()] == [backup_id]
            assert not [entry for entry in validator.recovery_scan() if entry.recoverable]
            return
        lost = set(report.lost)
        assert lost <= set(full.errors[0].schema_objects)
        recovered = store.snapshot(report.new_backup_id)
        original = BackupStore.open(str(source), encryption_keys=KEY).snapshot(backup_id)
        survivors = {t.name for t in original.tables} - {label.split(" ", 1)[1] for label in lost if
                                                         label.startswith("table ")}
        assert {t.name for t in recovered.tables} == survivors
        assert all(recovered.table(name) == original.table(name) for name in survivors)


def test_wrong_key_is_reported_with_key_id(tmp_path: Path, mariadb: ThrowawayServer, shop: str) -> None:
    info = BackupStore.open(str(tmp_path), encryption_keys=KEY).create(mariadb.dsn, shop)
    stranger = Validator(BackupStore.open(str(tmp_path), encryption_keys=EncryptionKey.generate()))
    assert stranger.integrity_check(info.id).valid  # no key needed for stored bytes
    result = stranger.validate(info.id)
    assert not result.valid and KEY.key_id in str(result.errors[0])
    check = stranger.test_encryption(info.id)
    assert check.encrypted and not check.opens and check.key_id == KEY.key_id and not check.key_configured
    assert Validator(BackupStore.open(str(tmp_path), encryption_keys=KEY)).test_encryption(info.id).opens


def test_recalculate_checksum(tmp_path: Path, mariadb: ThrowawayServer, shop: str) -> None:
    store = BackupStore.open(str(tmp_path), encryption_keys=KEY)
    info = store.create(mariadb.dsn, shop)
    manifest_file = tmp_path / "manifests" / f"{info.id}.json"
    manifest_file.write_text(manifest_file.read_text().replace(info.checksum, "0" * 64))
    validator = Validator(store)
    assert not validator.validate(info.id).valid
    validator.recalculate_checksum(info.id)
    assert validator.validate(info.id).valid
    # Damaged objects: refuse, saying why.
    object_file = tmp_path / "objects" / store.manifest(info.id).snapshot_object.path
    data = bytearray(object_file.read_bytes())
    data[-3] ^= 0xFF
    object_file.write_bytes(bytes(data))
    with pytest.raises(IntegrityError, match="is damaged"):
        validator.recalculate_checksum(info.id)


def test_recovery_scan(tmp_path: Path, mariadb: ThrowawayServer, shop: str) -> None:
    store = BackupStore.open(str(tmp_path), encryption_keys=KEY)
    good = store.create(mariadb.dsn, shop)
    # A marker naming no process: abandoned, by the one rule, once its id's time is an hour past.
    (tmp_path / "pending" / "backup-20200101-000000-0000abcd.json").write_text("{}")
    orphan = tmp_path / "objects" / "ab" / f"{'ab' * 32}.plain"
    orphan.parent.mkdir(mode=0o700, exist_ok=True)
    orphan.write_bytes(b"left behind")
    kinds = {(entry.kind, entry.backup_id) for entry in Validator(store).recovery_scan()}
    assert kinds == {("incomplete", "backup-20200101-000000-0000abcd"), ("orphaned_object", None)}
    (tmp_path / "objects" / store.manifest(good.id).snapshot_object.path).unlink()
    scan = Validator(store).recovery_scan()
    assert ("damaged", good.id) in {(entry.kind, entry.backup_id) for entry in scan}


def test_restore_test_on_real_server(tmp_path: Path, mariadb: ThrowawayServer, shop: str) -> None:
    store = BackupStore.open(str(tmp_path), encryption_keys=KEY)
    info = store.create(mariadb.dsn, shop)
    result = Validator(store).restore_test(info.id, mariadb.dsn)
    assert result.passed and result.restored_hash == info.schema_hash
    import pymysql

    with pymysql.connect(unix_socket=str(mariadb.socket_path), user="root") as connection, connection.cursor() as c:
        c.execute("SHOW DATABASES LIKE 'ssb_restore_test_%'")
        assert c.fetchall() == ()


@pytest.mark.corpus
@pytest.mark.parametrize("name", [entry[0] for entry in corpus_entries()] or ["none"])
def test_restore_test_passes_for_every_corpus_schema(tmp_path: Path, mariadb: ThrowawayServer, name: str) -> None:
    entries = {entry[0]: entry[1:] for entry in corpus_entries()}
    if name not in entries:
        pytest.skip(f"corpus not found at {CORPUS}")
    database = f"rt_{name}"
    load_corpus(mariadb, database, *entries[name])
    store = BackupStore.open(str(tmp_path), encryption_keys=KEY)
    info = store.create(mariadb.dsn, database)
    assert Validator(store).restore_test(info.id, mariadb.dsn).passed


# --- crash safety ------------------------------------------------------------------------------

_CREATE = """
import sys
from schemasync_backup.plugins.crypto import EncryptionKey
from schemasync_backup.store.store import BackupStore
store = BackupStore.open(sys.argv[1], encryption_keys=EncryptionKey.from_value(sys.argv[2]), frame_size=4096)
while True:
    store.create(sys.argv[3], sys.argv[4])
    if sys.argv[5:] == ["once"]:
        break
"""


def test_sigkill_during_create_never_leaves_a_completed_broken_backup(
    tmp_path: Path, mariadb: ThrowawayServer, sakila: str
) -> None:
    rounds = int(os.environ.get("SCHEMASYNC_CRASH_ROUNDS", "25"))
    rng = __import__("random").Random(1234)
    command = [sys.executable, "-c", _CREATE, str(tmp_path), KEY.material.hex(), mariadb.dsn, sakila]
    # One create that runs to the end tells how long one takes on this machine, however busy it is:
    # the kills then land anywhere from interpreter start-up to just after the commit.
    started = time.monotonic()
    subprocess.run([*command, "once"], check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    whole = time.monotonic() - started
    for _ in range(rounds):
        process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(rng.uniform(0.2, 1.1) * whole)
        process.send_signal(signal.SIGKILL)
        process.wait()
    store = BackupStore.open(str(tmp_path), encryption_keys=KEY)
    validator = Validator(store)
    completed = store.list(status="COMPLETED")
    assert completed, "no create finished: raise the sleep range"
    for info in completed:
        assert validator.validate(info.id).valid, info.id
    scan = validator.recovery_scan()
    pending = {path.stem for path in (tmp_path / "pending").iterdir()}
    assert pending == {entry.backup_id for entry in scan if entry.kind in ("incomplete", "leftover_marker")}
    listed = {info.id for info in completed}
    assert all(entry.backup_id in listed for entry in scan if entry.kind == "leftover_marker")
    assert not [entry for entry in scan if entry.kind == "damaged"]
    leftovers = list((tmp_path / "tmp").iterdir()) if (tmp_path / "tmp").exists() else []
    assert all(not path.name.endswith(".json") for path in leftovers)
    with pytest.raises(EncryptionKeyError):
        BackupStore.open(str(tmp_path)).snapshot(completed[0].id)


@pytest.mark.parametrize("storage_url", ["s3", "azure", "gcs"], indirect=True)
def test_damage_is_found_on_cloud_storage(storage_url: Any, mariadb: ThrowawayServer, sakila: str) -> None:
    store = BackupStore.open(storage_url.url, storage_options=storage_url.options, encryption_keys=KEY,
                             frame_size=8192)
    info = store.create(mariadb.dsn, sakila)
    record = store.manifest(info.id).snapshot_object
    path = f"{store.root}/objects/{record.path}"
    data = bytearray(store.fs.cat_file(path))
    data[len(data) // 2] ^= 0x40
    store.fs.pipe_file(path, bytes(data))
    validator = Validator(store)
    result = validator.validate(info.id)
    assert not result.valid and result.errors[0].object_path == path
    assert result.errors[0].schema_objects
    report = validator.partial_recovery(info.id)
    assert report.recovered and set(report.lost) <= set(result.errors[0].schema_objects)
    assert validator.validate(report.new_backup_id).valid
    assert store.status_of(info.id) == "CORRUPTED"


def test_a_hash_of_an_earlier_canonical_form_is_not_damage(
    tmp_path: Path, mariadb: ThrowawayServer, shop: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = BackupStore.open(str(tmp_path / "store"))
    info = store.create(mariadb.dsn, shop)
    # A later version that folds some spelling another way computes other hashes for the same bytes.
    monkeypatch.setattr("schemasync_backup.model.canonical.CANONICAL_VERSION", 99)
    result = Validator(store).validate(info.id)
    assert result.valid and not result.damaged
    assert any("the hash form changed between versions; this is not damage" in w.message for w in result.warnings)
    assert store.get(info.id).status == "COMPLETED"
    assert Validator(store).restore_test(info.id, mariadb.dsn).passed


# --- parse checks: judged only where a parser can judge, counted, cached ------------------------

PARSE_SCHEMA = (
    "CREATE TABLE parent (id INT NOT NULL PRIMARY KEY, amount DECIMAL(10,2) NOT NULL DEFAULT 0)",
    # MariaDB's INET6 type: sqlglot judges the CREATE TABLE and cannot parse it.
    "CREATE TABLE tokens (id INET6 NOT NULL PRIMARY KEY, note VARCHAR(20))",
    "CREATE TABLE history (id INT NOT NULL, at DATE NOT NULL, PRIMARY KEY (id, at)) "
    "PARTITION BY RANGE (YEAR(at)) (PARTITION p1 VALUES LESS THAN (2030), PARTITION pmax VALUES LESS THAN MAXVALUE)",
    "CREATE VIEW amounts AS SELECT id, amount FROM parent",
    "CREATE TRIGGER guard BEFORE UPDATE ON parent FOR EACH ROW BEGIN IF NEW.amount < 0 THEN "
    "SIGNAL SQLSTATE '45000' SET MESSAGE_TEXT = 'negative'; END IF; END",
    "CREATE PROCEDURE counted(IN p_from INT, OUT p_rows INT) READS SQL DATA BEGIN "
    "DECLARE v INT DEFAULT 0; SELECT COUNT(*) INTO v FROM parent WHERE id >= p_from; SET p_rows = v; END",
    "CREATE EVENT purge_negative ON SCHEDULE EVERY 1 DAY DISABLE DO DELETE FROM parent WHERE amount < 0",
)


class CountingParser:
    """The real parse check, counting its calls."""

    def __init__(self) -> None:
        self.calls = 0

    def __call__(self, statement: str) -> tuple[bool, str | None]:
        self.calls += 1
        return parse_problem(statement)


@pytest.fixture
def parse_backup(tmp_path: Path, mariadb: ThrowawayServer, root: Any, fresh_db: str) -> tuple[BackupStore, str]:
    run_sql(root, fresh_db, *PARSE_SCHEMA)
    store = BackupStore.open(str(tmp_path / "store"), encryption_keys=KEY)
    return store, store.create(mariadb.dsn, fresh_db).id


def test_parse_checks_judge_tables_and_views_only_and_warn_of_nothing(
    parse_backup: tuple[BackupStore, str], tmp_path: Path
) -> None:
    store, backup_id = parse_backup
    result = Validator(store, ParseCache(tmp_path / "cache.json")).validate(backup_id)
    assert result.valid and not result.warnings, result.warnings
    # Three tables (the partitioned one judged without its partition clause) and a view.
    assert (result.parse_checked, result.parse_cached, result.parse_not_judged) == (4, 0, 3)
    assert result.parse_failed == 1
    assert [finding.schema_objects for finding in result.parse_failures] == [("table tokens",)]
    assert "sqlglot cannot parse the DDL of table `tokens`" in str(result.parse_failures[0])


def test_the_cache_is_used_by_the_next_validation(
    parse_backup: tuple[BackupStore, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store, backup_id = parse_backup
    parser = CountingParser()
    monkeypatch.setattr(parse_checks, "parse_problem", parser)
    first = Validator(store, ParseCache(tmp_path / "cache.json")).validate(backup_id)
    assert parser.calls == first.parse_checked == 4 and first.parse_cached == 0
    # A new validator (a new process, another backup of the same schema) reads the verdicts back.
    second = Validator(store, ParseCache(tmp_path / "cache.json")).validate(backup_id)
    assert parser.calls == 4
    assert second.parse_cached == second.parse_checked == 4
    assert second.parse_failures == first.parse_failures


@pytest.mark.parametrize("content", [b"", b"not json", b'{"format": "schemasync-parse-checks"}', b"[1, 2]",
                                     b'{"format": "schemasync-parse-checks", "parser": "sqlglot 0.0", "rules": 1, '
                                     b'"verdicts": {}}', b"\xff\xfe"])
def test_a_corrupt_cache_file_is_ignored(parse_backup: tuple[BackupStore, str], tmp_path: Path,
                                         content: bytes) -> None:
    store, backup_id = parse_backup
    cache_file = tmp_path / "cache.json"
    cache_file.write_bytes(content)
    result = Validator(store, ParseCache(cache_file)).validate(backup_id)
    assert result.valid and result.parse_checked == 4 and result.parse_cached == 0
    # ... and replaced by a good one.
    assert Validator(store, ParseCache(cache_file)).validate(backup_id).parse_cached == 4


def test_a_cache_that_cannot_be_written_is_not_kept(parse_backup: tuple[BackupStore, str], tmp_path: Path) -> None:
    store, backup_id = parse_backup
    blocked = tmp_path / "a-file"
    blocked.write_text("")
    result = Validator(store, ParseCache(blocked / "cache.json")).validate(backup_id)
    assert result.valid and result.parse_checked == 4


def test_damage_is_found_with_a_warm_cache(parse_backup: tuple[BackupStore, str], tmp_path: Path) -> None:
    store, backup_id = parse_backup
    cache = ParseCache(tmp_path / "cache.json")
    assert Validator(store, cache).validate(backup_id).valid
    record = store.manifest(backup_id).snapshot_object
    object_file = tmp_path / "store" / "objects" / record.path
    data = bytearray(object_file.read_bytes())
    data[len(data) // 2] ^= 0x01
    object_file.write_bytes(bytes(data))
    result = Validator(store, ParseCache(tmp_path / "cache.json")).validate(backup_id)
    assert not result.valid and result.damaged and store.status_of(backup_id) == "CORRUPTED"


def test_progress_counts_frames_bytes_and_statements(parse_backup: tuple[BackupStore, str], tmp_path: Path) -> None:
    store, backup_id = parse_backup
    seen: list[ValidationProgress] = []
    Validator(store, ParseCache(None)).validate(backup_id, progress=seen.append)
    frames = [step for step in seen if step.stage == "frames"]
    checks = [step for step in seen if step.stage == "parse checks"]
    found = store.manifest(backup_id)
    assert frames[-1].done == frames[-1].total == sum(len(record.frames) for record in found.objects)
    assert frames[-1].bytes_done == frames[-1].bytes_total == sum(record.stored_size for record in found.objects)
    assert frames[-1].objects_done == len(found.objects)
    assert checks[-1].done == checks[-1].total == len(PARSE_SCHEMA)
