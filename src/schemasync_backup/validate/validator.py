"""Validator: prove a backup is intact, find exactly what is damaged, salvage the rest.

Checks collect typed findings into a result; callers decide whether to raise
(``result.raise_for_errors()``). Each finding names the stored object, the schema objects it
holds and what is wrong.
"""

from __future__ import annotations

import contextlib
import enum
import hashlib
import io
import json
import logging
import secrets
from collections.abc import Iterator
from datetime import UTC, datetime

import attrs

from schemasync_backup.capture.connection import Source, describe, open_source, translate_errors
from schemasync_backup.capture.restore import restore_snapshot
from schemasync_backup.capture.table_data import open_data_connection
from schemasync_backup.display import Card, Rows, Shown, brief_repr, human_size, yes_no
from schemasync_backup.errors import (
    BackupFormatError,
    BackupNotFoundError,
    EncryptionKeyError,
    IntegrityError,
    InvalidSourceError,
    PluginError,
    SchemaSyncBackupError,
    StorageError,
    UnsealedBackupError,
)
from schemasync_backup.errors import BackupValidationError as BackupValidationError  # noqa: PLC0414 - re-export
from schemasync_backup.errors import RecoveryError as RecoveryError  # noqa: PLC0414 - re-export
from schemasync_backup.formats import framing
from schemasync_backup.formats.backup_id import check_backup_id, is_backup_id
from schemasync_backup.formats.data_index import ChunkRecord, DataScope
from schemasync_backup.formats.framing import ObjectRecord
from schemasync_backup.formats.manifest import Manifest, Status
from schemasync_backup.formats.snapshot_stream import ContentEntry, decode_snapshot
from schemasync_backup.model.progress import ProgressCallback, ProgressUpdate
from schemasync_backup.model.snapshot import ServerInfo, Snapshot
from schemasync_backup.sql.quoting import quote_identifier
from schemasync_backup.store.data_backup import reload_table
from schemasync_backup.store.locks import pending_creates
from schemasync_backup.store.maintenance import prune
from schemasync_backup.store.store import BackupStore
from schemasync_backup.validate.parse_checks import ParseCache, ParseReport, check_statements

_log = logging.getLogger(__name__)


class Severity(enum.StrEnum):
    """Whether a finding fails validation (an error) or only reports (a warning)."""

    ERROR = "error"
    WARNING = "warning"


class FindingKind(enum.StrEnum):
    """What an error means: proven ``damage``, a missing ``key``, or an ``untrusted`` manifest."""

    DAMAGE = "damage"
    KEY = "key"
    UNTRUSTED = "untrusted"


@attrs.frozen
class Finding:
    severity: Severity = attrs.field(converter=Severity)
    message: str
    object_path: str | None = None
    #: The schema objects the damaged bytes hold, as "table film", "view actor_info", ...
    schema_objects: tuple[str, ...] = ()
    #: What an error means: "damage" (proven: the bytes are not what was written), "key" (a key
    #: this store lacks is needed: a failure to read, not damage), "untrusted" (nothing proves the
    #: manifest is this store's). Only damage ever marks a backup CORRUPTED.
    kind: FindingKind = attrs.field(default=FindingKind.DAMAGE, converter=FindingKind)

    def __str__(self) -> str:
        held = f" (holds {', '.join(self.schema_objects)})" if self.schema_objects else ""
        return f"{self.message}{held}"


@attrs.frozen(repr=False)
class ValidationResult(Shown):
    backup_id: str
    valid: bool
    errors: tuple[Finding, ...]
    warnings: tuple[Finding, ...]
    checksum_valid: bool
    checked_at: str
    objects_checked: int
    bytes_checked: int
    #: Whether plaintext was checked too (needs the key), or only stored bytes.
    deep: bool = True
    #: The key ids that are needed and not configured; their backups are unread, not damaged.
    keys_needed: tuple[str, ...] = ()
    #: Parse checks of the snapshot's DDL (a full check of an intact backup): the statements sqlglot
    #: judged, how many of those verdicts came from the cache, and those no parser can judge.
    parse_checked: int = 0
    parse_cached: int = 0
    parse_not_judged: int = 0
    #: The statements sqlglot judged and could not parse: warnings to list on demand (``--verbose``),
    #: not in ``warnings``, since a parser's gap is no news about the backup.
    parse_failures: tuple[Finding, ...] = ()

    @property
    def parse_failed(self) -> int:
        return len(self.parse_failures)

    @property
    def damaged(self) -> bool:
        """Whether damage was proven (a checksum or authentication failure with the right key)."""
        return any(error.kind == FindingKind.DAMAGE for error in self.errors)

    @property
    def verdict(self) -> str:
        """``valid``, ``INVALID`` (damage proven) or ``NOT CHECKED`` (errors that prove no damage: a key is missing)."""
        return "valid" if self.valid else "INVALID" if self.damaged else "NOT CHECKED"

    def __repr__(self) -> str:
        return brief_repr(self, backup_id=self.backup_id, valid=self.valid, errors=len(self.errors),
                          warnings=len(self.warnings), objects_checked=self.objects_checked)

    def _card(self) -> Card:
        facts: list[tuple[str, object]] = [
            ("check", "full (plaintext too)" if self.deep else "integrity (stored bytes only)"),
            ("checked", f"{self.objects_checked} object(s), {human_size(self.bytes_checked)}, at {self.checked_at}"),
            ("checksum valid", yes_no(self.checksum_valid)),
        ]
        if self.keys_needed:
            facts.append(("keys needed", ", ".join(self.keys_needed)))
        if self.parse_checked or self.parse_not_judged:
            facts.append(("parse checks", f"{self.parse_checked} judged ({self.parse_cached} cached), "
                                          f"{self.parse_failed} not parsed by sqlglot, "
                                          f"{self.parse_not_judged} not judged"))
        return Card(f"Validation of backup {self.backup_id}: {self.verdict}", tuple(facts),
                    notes=(*(f"error: {finding}" for finding in self.errors),
                           *(f"warning: {finding}" for finding in self.warnings)),
                    kind="validation")

    def raise_for_errors(self) -> None:
        if self.errors:
            raise BackupValidationError(
                f"backup validation failed: {self.errors[0]}"
                + (f" (and {len(self.errors) - 1} more)" if len(self.errors) > 1 else ""),
                subject=self.backup_id,
                result=self,
            )


#: How far a validation is: stage "frames" (stored frames read, of every object; ``objects_done`` of
#: ``objects_total`` objects, ``bytes_done`` of ``bytes_total`` stored bytes) or "parse checks"
#: (statements looked at). The library's one progress record, under the name validation gave it first.
ValidationProgress = ProgressUpdate
Progress = ProgressCallback


@attrs.frozen
class EncryptionCheck:
    backup_id: str
    encrypted: bool
    key_id: str | None
    key_configured: bool
    opens: bool
    message: str


@attrs.frozen
class RestoreTestResult(Shown):
    backup_id: str
    passed: bool
    expected_hash: str
    restored_hash: str
    scratch_database: str
    statements: int
    #: The backup's rows loaded into the scratch database, and its chunks proven equal after loading.
    rows: int = 0
    chunks_verified: int = 0

    def _card(self) -> Card:
        facts: list[tuple[str, object]] = [
            ("scratch database", self.scratch_database), ("statements run", self.statements),
            ("expected hash", self.expected_hash), ("restored hash", self.restored_hash)]
        if self.rows or self.chunks_verified:
            facts.append(("data", f"{self.rows:,} rows loaded, {self.chunks_verified} chunk(s) proven equal"))
        verdict = "passed" if self.passed else "FAILED (the restored schema differs from the backup's)"
        return Card(f"Restore test of backup {self.backup_id}: {verdict}", tuple(facts), kind="restore-test")


@attrs.frozen(repr=False)
class RecoveryReport(Shown):
    source_backup_id: str
    new_backup_id: str
    recovered: tuple[str, ...]
    lost: tuple[str, ...]

    def __repr__(self) -> str:
        return brief_repr(self, source_backup_id=self.source_backup_id, new_backup_id=self.new_backup_id,
                          recovered=len(self.recovered), lost=len(self.lost))

    def _card(self) -> Card:
        return Card(f"Backup {self.source_backup_id} salvaged as {self.new_backup_id}: "
                    f"{len(self.recovered)} object(s) recovered, {len(self.lost)} lost",
                    tables=(Rows("objects lost", ("object",), [(name,) for name in self.lost]),
                            Rows("objects recovered", ("object",), [(name,) for name in self.recovered])),
                    kind="recovery")


@attrs.frozen
class ScanEntry:
    kind: str  # "running", "incomplete", "leftover_marker", "damaged", "orphaned_object", "unknown_file"
    backup_id: str | None
    path: str
    recoverable: bool
    detail: str


class _Findings:
    def __init__(self) -> None:
        self.errors: list[Finding] = []
        self.warnings: list[Finding] = []
        self.objects = 0
        self.bytes = 0
        self.keys_needed: list[str] = []
        self.parse = ParseReport()

    def error(self, message: str, path: str | None = None, held: tuple[str, ...] = (),
              kind: FindingKind = FindingKind.DAMAGE) -> None:
        self.errors.append(Finding(Severity.ERROR, message, path, held, kind))

    def key_needed(self, exc: EncryptionKeyError, path: str | None = None) -> None:
        self.error(exc.message, path, kind=FindingKind.KEY)
        if isinstance(exc.subject, str) and exc.subject not in self.keys_needed:
            self.keys_needed.append(exc.subject)

    def warning(self, message: str, path: str | None = None, held: tuple[str, ...] = ()) -> None:
        self.warnings.append(Finding(Severity.WARNING, message, path, held))


def _held_by_frames(record: ObjectRecord, frames: set[int], contents: tuple[ContentEntry, ...]) -> tuple[str, ...]:
    """Which schema objects lie (partly) in the given frames, from the manifest's byte ranges."""
    ranges, offset = [], 0
    for frame in record.frames:
        ranges.append((offset, offset + frame.plaintext_size))
        offset += frame.plaintext_size
    held = []
    for entry in contents:
        end = entry.offset + entry.length
        if any(start < end and entry.offset < stop for index in frames for start, stop in [ranges[index]]):
            held.append(f"{entry.kind} {entry.name}")
    if 0 in frames and record.frames:
        held.insert(0, "snapshot header")
    return tuple(held)


@attrs.frozen
class Validator:
    """Checks the backups of one store."""

    store: BackupStore
    #: Parse verdicts kept across backups (by default in the user's cache directory; see parse_checks).
    parse_cache: ParseCache = attrs.field(factory=ParseCache)

    # --- checks ------------------------------------------------------------------------------

    def integrity_check(self, backup_id: str, *, progress: Progress | None = None) -> ValidationResult:
        """The fast check that needs no key: manifest checksum, every object's stored bytes."""
        return self._reported(self._check(backup_id, deep=False, progress=progress))

    def validate(self, backup_id: str, *, progress: Progress | None = None) -> ValidationResult:
        """Everything: stored bytes, decryption, decompression, plaintext checksums, snapshot, DDL.

        Records the outcome as the backup's status: CORRUPTED only for proven damage. A key that
        is not configured, or a manifest nothing authenticates, leaves the status as it was; a
        store that refuses the write (read-only) still gets validated. ``progress`` is called as
        frames are read and statements parse-checked.
        """
        check_backup_id(backup_id)
        if not self.store.exists(backup_id):
            raise BackupNotFoundError(
                f"backup {backup_id} not found in {self.store.url} (`backup list` shows them)",
                subject=backup_id,
            )
        previous = self.store.recorded_status(backup_id)
        self._record(backup_id, Status.VALIDATING)
        try:
            result = self._check(backup_id, deep=True, progress=progress)
        except BaseException:
            self._record(backup_id, None, previous=previous)
            raise
        self._reported(result)
        if result.damaged:
            self._record(backup_id, Status.CORRUPTED, "; ".join(str(error) for error in result.errors[:3]))
        elif result.valid:
            self._record(backup_id, Status.COMPLETED)
        else:
            self._record(backup_id, None, previous=previous)
        return result

    def _reported(self, result: ValidationResult) -> ValidationResult:
        """The result, after a failed one is sent to the notifiers (``validation.failed``)."""
        if not result.valid:
            self.store.registry.notify("validation.failed", {
                "backup_id": result.backup_id, "message": str(result.errors[0]), "damaged": result.damaged,
                "keys_needed": list(result.keys_needed), "deep": result.deep})
        return result

    def _record(self, backup_id: str, status: str | None, reason: str = "",
                previous: dict[str, str] | None = None) -> None:
        """Record a status (None: put back ``previous``); a store that refuses the write is told in the log."""
        try:
            if status is None:
                self.store.restore_status(backup_id, previous)
            else:
                self.store.set_status(backup_id, status, reason)
        except StorageError as exc:
            _log.warning("validation of %s: the status could not be recorded: %s", backup_id, exc.message)

    def validate_all(self) -> Iterator[ValidationResult]:
        """Validate every completed backup, newest first; one bad backup does not stop the rest."""
        for info in self.store.list():
            if info.status != Status.CREATING:
                yield self.validate(info.id)

    def _check(self, backup_id: str, *, deep: bool, progress: Progress | None, retried: bool = False
               ) -> ValidationResult:
        check_backup_id(backup_id)
        findings = _Findings()
        checksum_valid = True
        try:
            found = self.store.manifest(backup_id)
        except (BackupFormatError, IntegrityError) as exc:
            checksum_valid = False
            findings.error(exc.message, self.store.files.manifest_path(backup_id))
            try:
                found = self.store.manifest(backup_id, verify=False)
            except BackupFormatError:
                return self._result(backup_id, findings, checksum_valid, deep)
        if deep and checksum_valid:
            try:
                self.store.authenticate(found)
            except EncryptionKeyError as exc:
                findings.key_needed(exc, self.store.files.manifest_path(backup_id))
            except UnsealedBackupError as exc:
                findings.error(exc.message, self.store.files.manifest_path(backup_id), kind=FindingKind.UNTRUSTED)
        reading = _Reading(found.objects, progress)
        snapshot = self._check_object(found, found.snapshot_object, findings, reading, deep=deep, keep=True)
        for record in found.objects[1:]:
            self._check_object(found, record, findings, reading, deep=deep, keep=False)
        missing = any(error.message.startswith("object missing") for error in findings.errors)
        if missing and checksum_valid and not retried:
            # optimize may have switched the manifest to new objects and removed the old ones while
            # we read: a manifest that changed meanwhile is checked again before anything is called missing.
            try:
                changed = self.store.manifest(backup_id).objects != found.objects
            except (BackupFormatError, IntegrityError):
                changed = False
            if changed:
                return self._check(backup_id, deep=deep, progress=progress, retried=True)
        if deep and not findings.errors and snapshot is not None:
            # The snapshot's bytes were just decrypted and checked: load them, don't fetch them again.
            self._check_snapshot(found, snapshot, findings, progress)
        return self._result(backup_id, findings, checksum_valid, deep)

    def _result(self, backup_id: str, findings: _Findings, checksum_valid: bool, deep: bool) -> ValidationResult:
        return ValidationResult(
            backup_id=backup_id,
            valid=not findings.errors,
            errors=tuple(findings.errors),
            warnings=tuple(findings.warnings),
            checksum_valid=checksum_valid,
            checked_at=datetime.now(UTC).isoformat(timespec="seconds"),
            objects_checked=findings.objects,
            bytes_checked=findings.bytes,
            deep=deep,
            keys_needed=tuple(findings.keys_needed),
            parse_checked=findings.parse.checked,
            parse_cached=findings.parse.cached,
            parse_not_judged=findings.parse.not_judged,
            parse_failures=tuple(Finding(Severity.WARNING, str(failure),
                                         schema_objects=(f"{failure.kind} {failure.name}",))
                                 for failure in findings.parse.failures),
        )

    def _held(self, found: Manifest, record: ObjectRecord, frames: set[int]) -> tuple[str, ...]:
        if record is found.index_object:
            return ("snapshot index",)
        return _held_by_frames(record, frames, self._contents(found))

    def _check_object(self, found: Manifest, record: ObjectRecord, findings: _Findings, reading: _Reading, *,
                      deep: bool, keep: bool) -> bytearray | None:
        """Check one object in one pass over its stored bytes, a frame at a time; with ``deep`` and
        ``keep``, return its verified plaintext (None when it fails)."""
        path = self.store.files.object_path(record)
        every_frame = set(range(len(record.frames)))
        kept = bytearray() if deep and keep else None

        def on_frame(index: int, plaintext: bytes | None) -> None:
            if kept is not None and plaintext is not None:
                kept.extend(plaintext)
            reading.frame(record.frames[index].stored_size)

        try:
            with self.store.files.io("read backup", path), self.store.files.open_read(path) as stream:
                scan = framing.scan_object(stream, record, path, keyring=self.store.keyring if deep else None,
                                           registry=self.store.registry if deep else None, on_frame=on_frame)
        except FileNotFoundError:
            findings.error(f"object missing: {path}", path, self._held(found, record, every_frame))
            return None
        finally:
            reading.object_done(record)
        findings.objects += 1
        findings.bytes += scan.stored_size
        if not scan.stored_intact(record):
            damaged = set(scan.damaged_frames)
            findings.error(
                f"checksum mismatch (expected: {record.stored_sha256}, got: {scan.stored_sha256}) in {path}, "
                f"{scan.stored_size} of {record.stored_size} bytes, frames {sorted(damaged) or 'unknown'} damaged",
                path,
                self._held(found, record, damaged or every_frame),
            )
            return None
        if not deep:
            return None
        if isinstance(scan.problem, EncryptionKeyError):
            findings.key_needed(scan.problem, path)
            return None
        if scan.problem is not None:
            findings.error(scan.problem.message, path, self._held(found, record, every_frame))
            return None
        if scan.plaintext_sha256 != record.address:
            findings.error(f"{path}: checksum mismatch (expected: {record.address}, got: {scan.plaintext_sha256})",
                           path, self._held(found, record, every_frame))
            return None
        if scan.plaintext_size != record.size:
            findings.error(f"size mismatch in {path}: expected {record.size} bytes, got {scan.plaintext_size}", path)
            return None
        return kept

    def _contents(self, found: Manifest) -> tuple[ContentEntry, ...]:
        """The snapshot's index, or nothing when it cannot be read (damaged, or no key)."""
        try:
            return self.store.contents(found)
        except (SchemaSyncBackupError, FileNotFoundError):
            return ()

    def _damaged_frames(self, record: ObjectRecord, data: bytes) -> set[int]:
        """Which frames differ from what the manifest recorded, located by recorded sizes."""
        offset = record.stored_size - sum(frame.stored_size for frame in record.frames)
        damaged = set()
        for index, frame in enumerate(record.frames):
            stored = data[offset : offset + frame.stored_size]
            if hashlib.sha256(stored).hexdigest() != frame.stored_sha256:
                damaged.add(index)
            offset += frame.stored_size
        return damaged

    def _check_snapshot(self, found: Manifest, plaintext: bytearray, findings: _Findings,
                        progress: Progress | None) -> None:
        try:
            snapshot = decode_snapshot(plaintext, found.info.captured_at)
        except SchemaSyncBackupError as exc:
            findings.error(f"the snapshot does not load: {exc}")
            return
        # The snapshot holds all the checks below need: its bytes need not stay in memory beside it.
        plaintext.clear()
        if snapshot.schema_hash != found.info.schema_hash:
            # Every byte checked out against the manifest, which is sealed or checksummed: the hash
            # was computed by an earlier canonical form (a new version folds some spelling another
            # way), not by other contents. Damage is proven by checksums, never guessed from this.
            findings.warning(
                f"the schema hash recorded at backup time ({found.info.schema_hash[:12]}) differs from the one "
                f"this version computes ({snapshot.schema_hash[:12]}) although every byte is intact: the hash "
                "form changed between versions; this is not damage"
            )
        total = sum(1 for _ in _statements(snapshot))
        findings.parse = check_statements(
            _statements(snapshot), self.parse_cache,
            progress=None if progress is None else lambda done: progress(ValidationProgress("parse checks", done,
                                                                                               total)))

    # --- repair --------------------------------------------------------------------------------

    def recalculate_checksum(self, backup_id: str) -> str:
        """Rebuild a damaged manifest's recorded checksums from objects that prove intact.

        An object proves intact when it decrypts and decompresses (every frame authenticated)
        to plaintext whose sha256 is its address. Refuses, saying why, otherwise.
        """
        found = self.store.manifest(backup_id, verify=False)
        # A manifest whose recorded checksums are rebuilt must be ours to begin with: re-sealing a
        # forged one would make it trusted.
        self.store.authenticate(found)
        records = []
        for record in found.objects:
            path = self.store.files.object_path(record)
            try:
                plaintext = self.store.read_object(record)
            except FileNotFoundError:
                raise IntegrityError(
                    f"cannot recalculate the checksum of {backup_id}: object {path} is missing", subject=backup_id
                ) from None
            except (IntegrityError, BackupFormatError) as exc:
                raise IntegrityError(
                    f"cannot recalculate the checksum of {backup_id}: object {path} is damaged ({exc.message}); "
                    "try `backup partial-recovery` instead",
                    subject=backup_id,
                ) from exc
            rebuilt = framing.record_from_bytes(self.store.files.read(path), record.address, len(plaintext), path)
            records.append(attrs.evolve(rebuilt, stored_suffix=record.stored_suffix))
        written = self.store.write_manifest(attrs.evolve(found, objects=tuple(records)))
        self.store.set_status(backup_id, Status.COMPLETED, "checksums recalculated")
        return written.info.checksum

    def test_encryption(self, backup_id: str) -> EncryptionCheck:
        """Whether the configured keys open this backup, and which key it needs."""
        record = self.store.manifest(backup_id, verify=False).snapshot_object
        if record.cipher is None:
            return EncryptionCheck(backup_id, False, None, True, True, "backup is not encrypted")
        configured = record.key_id in self.store.keyring.key_ids
        try:
            self.store.read_object(record)
        except EncryptionKeyError as exc:
            return EncryptionCheck(backup_id, True, record.key_id, False, False, exc.message)
        except (IntegrityError, BackupFormatError, FileNotFoundError) as exc:
            return EncryptionCheck(backup_id, True, record.key_id, configured, False, str(exc))
        return EncryptionCheck(backup_id, True, record.key_id, configured, True, f"opens with key {record.key_id}")

    def restore_test(self, backup_id: str, scratch_dsn: Source, *,
                     progress: ProgressCallback | None = None) -> RestoreTestResult:
        """Restore into a scratch database on a real server, capture it, compare schema hashes.

        ``progress`` is told stage ``"statements"`` (statements run of the restore's), then
        ``"objects"`` (the scratch copy's objects captured) and, for a backup with rows, ``"rows"``
        (chunks loaded of those it holds, with their rows and bytes)."""
        check_backup_id(backup_id)
        snapshot = self.store.snapshot(backup_id)
        # Hashed now, like the copy: the hash recorded at backup time may be of an earlier form.
        expected = snapshot.schema_hash
        scratch = f"ssb_restore_test_{secrets.token_hex(4)}"
        try:
            statements = restore_snapshot(snapshot, scratch_dsn, scratch, progress=progress)
            restored = Snapshot.capture(scratch_dsn, scratch, progress=progress).schema_hash
            rows, chunks = self._restore_data(backup_id, snapshot, scratch_dsn, scratch, progress)
        except BaseException as exc:
            # The cleanup of a failed test (often: the server went away) must not replace its error.
            try:
                _drop_database(scratch_dsn, scratch)
            except SchemaSyncBackupError as cleanup:
                exc.add_note(f"the scratch database {scratch} could not be dropped: {cleanup.message}")
            raise
        _drop_database(scratch_dsn, scratch)
        return RestoreTestResult(backup_id, restored == expected, expected, restored, scratch, statements, rows,
                                 chunks)

    def _restore_data(self, backup_id: str, snapshot: Snapshot, scratch_dsn: Source, scratch: str,
                      progress: ProgressCallback | None) -> tuple[int, int]:
        """Load every table's rows the backup holds into the scratch copy, each chunk proven after loading."""
        held = self.store.data_index(backup_id)
        if held is None:
            return 0, 0
        rows = chunks = loaded = 0
        if not isinstance(scratch_dsn, str):
            raise InvalidSourceError("restore_test of a backup with data needs the scratch server's DSN, not an open "
                                     "connection: the rows load on a connection of their own", subject=backup_id)
        tables = [table for table in held.tables if table.scope == DataScope.ROWS]
        chunks_total, bytes_total = sum(len(table.chunks) for table in tables), sum(table.size for table in tables)

        def tell() -> None:
            if progress is not None and chunks_total:
                progress(ProgressUpdate("rows", chunks, chunks_total, bytes_done=loaded, bytes_total=bytes_total,
                                        rows_done=rows))

        read = self.store.chunk_reader(backup_id)
        with contextlib.closing(open_data_connection(scratch_dsn, scratch)) as connection:
            tell()

            def done(chunk: ChunkRecord, count: int) -> None:
                nonlocal rows, chunks, loaded
                rows, chunks, loaded = rows + count, chunks + 1, loaded + chunk.size
                tell()

            for table in tables:
                reload_table(connection, snapshot.table(table.table), table, read, loaded=done)
        return rows, chunks

    # --- recovery ------------------------------------------------------------------------------

    def partial_recovery(self, backup_id: str, *, progress: ProgressCallback | None = None) -> RecoveryReport:
        """A new backup of every schema object whose bytes are intact, and a report of what was lost.

        The new backup is marked partial when anything was lost. Raises RecoveryError, writing
        nothing, when no schema object can be saved. ``progress`` is told stage ``"salvage"``
        (frames of the snapshot read, intact or not, with their stored bytes), then ``"writing"``
        (the new backup's frames written, as :meth:`BackupStore.create` tells them)."""
        found = self.store.manifest(backup_id, verify=False)
        self.store.authenticate(found)
        record = found.snapshot_object
        plaintext = self._salvage(record, self.store.files.object_path(record), progress)
        contents = self._contents(found)
        if not contents:
            # Without the index, every line that still parses is an object; the lost are uncounted.
            lines = plaintext.split(b"\n")
            kept = [line + b"\n" for line in lines[1:] if _parses(line)]
            header = lines[0] + b"\n" if _parses(lines[0]) else _fallback_header(found)
            snapshot = decode_snapshot(header + b"".join(kept), found.info.captured_at, lenient=True)
            recovered = [f"{kind} {name}" for kind, name in snapshot.objects()]
            # Without the index nothing says what a complete snapshot held: the salvage is partial.
            lost = ["objects whose names were in the damaged index"] if len(kept) < len(lines) - 2 else []
            partial = True
        else:
            header = plaintext[: contents[0].offset]
            pieces = [header if _parses(header) else _fallback_header(found)]
            recovered, lost = [], []
            for entry in contents:
                piece = plaintext[entry.offset : entry.offset + entry.length]
                (recovered if _parses(piece) else lost).append(f"{entry.kind} {entry.name}")
                if _parses(piece):
                    pieces.append(piece)
            snapshot = decode_snapshot(b"".join(pieces), found.info.captured_at, lenient=True)
            partial = bool(lost)
        if not recovered:
            raise RecoveryError(
                f"nothing of backup {backup_id} can be saved: no schema object in it is intact "
                f"({len(lost)} lost); nothing was written. Restore the backup's files from a copy, or use "
                "another backup",
                subject=backup_id,
            )
        info = self.store.save(
            snapshot,
            description=f"partial recovery of {backup_id}",
            tags={**found.info.tags, "recovered_from": backup_id, "partial": "true" if partial else "false"},
            partial=partial,
            progress=progress,
        )
        return RecoveryReport(backup_id, info.id, tuple(recovered), tuple(lost))

    def _salvage(self, record: ObjectRecord, path: str, progress: ProgressCallback | None) -> bytes:
        """The plaintext with every frame that cannot be read replaced by NUL bytes of its size."""
        frames = len(record.frames)

        def tell(done: int, stored: int) -> None:
            if progress is not None:
                progress(ProgressUpdate("salvage", done, frames, bytes_done=stored, bytes_total=record.stored_size))

        tell(0, 0)
        try:
            data = self.store.files.read(path)
        except FileNotFoundError:
            tell(frames, record.stored_size)
            return b"\0" * record.size
        stream = io.BytesIO(data)
        try:
            header = attrs.evolve(framing.read_header(stream, path), address=record.address)
        except BackupFormatError:
            tell(frames, record.stored_size)
            return b"\0" * record.size
        pieces: list[bytes] = []
        offset = header.size
        for index, frame in enumerate(record.frames):
            tell(index, min(offset, record.stored_size))
            stored = data[offset : offset + frame.stored_size]
            offset += frame.stored_size
            plain: bytes | None = None
            if hashlib.sha256(stored).hexdigest() == frame.stored_sha256:
                raw = framing.recorded_frame(index, index == len(record.frames) - 1, stored)
                try:
                    plain = framing.decode_frame(header, raw, self.store.keyring, self.store.registry, path)
                except (IntegrityError, BackupFormatError):
                    # A missing key (EncryptionKeyError) is not damage: it ends the salvage instead.
                    plain = None
            pieces.append(plain if plain is not None and len(plain) == frame.plaintext_size
                          else b"\0" * frame.plaintext_size)
        tell(frames, record.stored_size)
        return b"".join(pieces)

    def recovery_scan(self, *, progress: ProgressCallback | None = None) -> list[ScanEntry]:
        """Leftovers and damage across the store: incomplete backups, damaged ones, orphaned objects.

        ``progress`` is told stage ``"backups"``: backups checked of those with a manifest, with the
        stored bytes read so far (``bytes_total`` 0: the sizes are known only as each is read)."""
        entries = []
        manifests = set()
        for name in self.store.files.listdir("manifests"):
            if is_backup_id(name.removesuffix(".json")) and name.endswith(".json"):
                manifests.add(name.removesuffix(".json"))
            else:
                entries.append(ScanEntry("unknown_file", None, self.store.files.path("manifests", name), False,
                                         "not named like a backup manifest: nothing reads it"))
        for holder in pending_creates(self.store):
            backup_id, name = holder.name, f"{holder.name}.json"
            if not is_backup_id(backup_id):
                continue
            if backup_id not in manifests and holder.live:
                entries.append(ScanEntry("running", backup_id, self.store.files.path("pending", name), False,
                                         f"a create is running: {holder.describe()}"))
            elif backup_id not in manifests:
                entries.append(ScanEntry("incomplete", backup_id, self.store.files.path("pending", name), False,
                                         "objects may be written but no manifest was committed"))
            else:
                # The crash came after the commit: the backup is complete, only its marker is left.
                entries.append(ScanEntry("leftover_marker", backup_id, self.store.files.path("pending", name), True,
                                         "the backup completed; its pending marker was left by a crash "
                                         "and prune removes it"))
        scanned = _Scanned(len(manifests), progress)
        for backup_id in sorted(manifests):
            result = self.integrity_check(backup_id, progress=scanned.reading)
            scanned.backup_done()
            if not result.valid:
                entries.append(ScanEntry(
                    "damaged", backup_id, self.store.files.manifest_path(backup_id),
                    recoverable=self._salvageable(backup_id),
                    detail="; ".join(str(error) for error in result.errors[:3]),
                ))
        # Orphans by prune's own rule (a dry run): what it removes, and what it keeps for now. An object
        # whose address a damaged manifest still holds is no orphan: prune keeps it.
        pruned = prune(self.store, dry_run=True)
        for paths, detail in (
            (pruned.removed_objects, "no manifest names this object; prune removes it"),
            (pruned.kept_recent, "no manifest names this object; prune removes it once it is older than the grace "
                                 "period (a create may be about to name it)"),
            (pruned.kept_unknown_age, "no manifest names this object; the storage cannot say when it was written, "
                                      "so prune keeps it"),
        ):
            entries += [ScanEntry("orphaned_object", None, self.store.files.path(path), False, detail)
                        for path in paths]
        return entries


    def _salvageable(self, backup_id: str) -> bool:
        """Whether partial_recovery can save anything: some frame of the snapshot is intact (no key needed)."""
        try:
            record = self.store.manifest(backup_id, verify=False).snapshot_object
            data = self.store.files.read(self.store.files.object_path(record))
            # Every frame needs the header, and it must be the one the manifest recorded.
            header = framing.read_header(io.BytesIO(data), record.path)
            framing.check_header(header, record, self.store.registry, record.path)
        except (BackupFormatError, FileNotFoundError, IndexError, PluginError):
            return False
        return len(self._damaged_frames(record, data)) < len(record.frames)


class _Reading:
    """Counts the frames, objects and stored bytes read so far, for the progress callback."""

    def __init__(self, records: tuple[ObjectRecord, ...], progress: Progress | None) -> None:
        self.progress = progress
        self.frames_total = sum(len(record.frames) for record in records)
        self.objects_total = len(records)
        self.bytes_total = sum(record.stored_size for record in records)
        self.frames = self.objects = self.bytes = 0

    def frame(self, stored_size: int) -> None:
        self.frames += 1
        self.bytes += stored_size
        self._tell()

    def object_done(self, record: ObjectRecord) -> None:
        self.objects += 1
        self.bytes += record.stored_size - sum(frame.stored_size for frame in record.frames)  # the object header
        self._tell()

    def _tell(self) -> None:
        if self.progress is not None:
            self.progress(ValidationProgress("frames", self.frames, self.frames_total, self.objects,
                                             self.objects_total, self.bytes, self.bytes_total))


class _Scanned:
    """Backups checked by a recovery scan, and their stored bytes read, for the progress callback."""

    def __init__(self, total: int, progress: ProgressCallback | None) -> None:
        self.total, self.progress = total, progress
        self.done = self.bytes = self.reading_bytes = 0
        self._tell()

    def reading(self, update: ProgressUpdate) -> None:
        """One backup's own frames: its bytes read so far (a check that starts over never counts back)."""
        if update.stage == "frames":
            self.reading_bytes = max(self.reading_bytes, update.bytes_done)
            self._tell()

    def backup_done(self) -> None:
        self.done += 1
        self.bytes += self.reading_bytes
        self.reading_bytes = 0
        self._tell()

    def _tell(self) -> None:
        if self.progress is not None:
            self.progress(ProgressUpdate("backups", self.done, self.total, bytes_done=self.bytes + self.reading_bytes))


def _drop_database(source: Source, name: str) -> None:
    with open_source(source) as connection, translate_errors(describe(connection)), connection.cursor() as cursor:
        cursor.execute(f"DROP DATABASE IF EXISTS {quote_identifier(name)}")


def _parses(line: bytes) -> bool:
    try:
        json.loads(line)
    except (ValueError, UnicodeDecodeError):
        return False
    return True


def _fallback_header(found: Manifest) -> bytes:
    """A snapshot header from the manifest, when the stored one is lost."""
    server = attrs.asdict(ServerInfo("unknown", "unknown", "", 0))
    return json.dumps({"format": "schemasync-snapshot-stream", "version": 1, "database": found.info.database,
                       "charset": "utf8mb4", "collation": "utf8mb4_general_ci", "server": server}).encode() + b"\n"


def _statements(snapshot: Snapshot) -> Iterator[tuple[str, str, str]]:
    for table in snapshot.tables:
        yield "table", table.name, table.create_sql
    for view in snapshot.views:
        yield "view", view.name, view.create_sql
    for routine in snapshot.routines:
        yield routine.kind.lower(), routine.name, routine.create_sql
    for trigger in snapshot.triggers:
        yield "trigger", trigger.name, trigger.create_sql
    for event in snapshot.events:
        yield "event", event.name, event.create_sql
