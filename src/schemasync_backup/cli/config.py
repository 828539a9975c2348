"""YAML configuration for the command line: load, ``${VAR}`` expansion, validation, redaction.

The file has two sections, ``database`` (the server and database to back up and roll back) and
``backup`` (storage, retention, compression, encryption, validation, notifications, logging);
docs/config.md describes every key. The schema is the attrs classes below: a key is allowed
when a field of that name exists, and its type, choices and range come from the field (one
cattrs converter structures the file, with hooks made from that metadata). Every problem names
the key path (``backup.storage.s3.bucket``) and says what is allowed.

Secrets (passwords, storage keys, encryption keys, webhook URLs) never leave this module in
clear: :func:`redacted` replaces them and :meth:`Config.secrets` lists them for log filters.
"""

from __future__ import annotations

import difflib
import functools
import importlib
import importlib.util
import os
import re
import types
import typing
from collections.abc import Callable, Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit, urlunsplit

import attrs
import cattrs
import cattrs.gen

from schemasync_backup.capture.connection import ConnectionSpec, redact_dsn
from schemasync_backup.errors import ConfigError as ConfigError  # noqa: PLC0414 - re-export
from schemasync_backup.errors import InvalidSourceError, SchemaSyncBackupError, SettingsError
from schemasync_backup.model import durations
from schemasync_backup.plugins.crypto import DEFAULT_CIPHER, DEFAULT_KEY_ENV_VAR, EncryptionKey

if typing.TYPE_CHECKING:
    from schemasync_backup.plugins.manager import Registry
    from schemasync_backup.store.retention import RetentionPolicy
    from schemasync_backup.store.store import BackupStore

#: The environment variable naming the config file when ``--config`` is not given.
CONFIG_ENV_VAR = "MYSQL_SCHEMA_SYNC_CONFIG"
DEFAULT_CONFIG_FILE = "config.yaml"
REDACTED = "***"
#: Secrets shorter than this are redacted where they stand but not searched for in free text,
#: where replacing every occurrence of a 1-3 character string would mangle the text.
_MIN_SEARCHABLE_SECRET = 4

_VAR = re.compile(r"\$\$|\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")
_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kmgt]?i?b?)\s*$", re.IGNORECASE)
#: Binary units throughout, as the original tool's examples read them ("10240  # 10KB").
_SIZE_UNITS = {"": 1, "b": 1, **{f"{unit}{suffix}": 1024 ** power for power, unit in enumerate("kmgt", 1)
                                 for suffix in ("", "b", "i", "ib")}}
_TRUE = {"true", "yes", "on", "1"}
_FALSE = {"false", "no", "off", "0"}
_LEVELS = {"gzip": (0, 9), "lz4": (0, 16), "zstd": (1, 22)}
_BOOL_WORDS = ("true", "false")
#: Codecs and storage providers that need a package of an extra: (package, extra).
_CODEC_PACKAGES = {"zstd": ("zstandard", "zstd")}
#: The original tool's cipher names, for the names the cipher plugins register.
_CIPHER_ALIASES = {"aes256": DEFAULT_CIPHER}
_PROVIDER_PACKAGES = {"s3": "s3fs", "azure": "adlfs", "gcs": "gcsfs"}

NOTIFICATION_EVENTS = (
    "backup.created",
    "backup.failed",
    "backup.deleted",
    "validation.failed",
    "rollback.executed",
    "rollback.failed",
    "health_check.failed",
)


def _doc(text: str, **more: Any) -> dict[str, Any]:
    return {"doc": text, **more}


# --- the schema ----------------------------------------------------------------------------------
# Field metadata: doc (one line for docs/config.md), secret (redact), kind (duration, size, mode,
# dsn, url, retention), choices, min, max.


@attrs.frozen
class DatabaseConfig:
    dsn: str | None = attrs.field(default=None, metadata=_doc(
        "a whole DSN, mysql://user:password@host:3306/database; instead of the keys below", kind="dsn",
        secret=True))
    host: str = attrs.field(default="127.0.0.1", metadata=_doc("server host name or address"))
    port: int = attrs.field(default=3306, metadata=_doc("server TCP port", min=1, max=65535))
    username: str = attrs.field(default="root", metadata=_doc("user name"))
    password: str = attrs.field(default="", metadata=_doc("password; write ${DB_PASSWORD}", secret=True))
    database: str | None = attrs.field(default=None, metadata=_doc(
        "the database (schema) to back up and roll back; `--database` overrides it"))
    unix_socket: str | None = attrs.field(default=None, metadata=_doc("connect over this socket instead of TCP"))
    ssl_ca: str | None = attrs.field(default=None, metadata=_doc("CA certificate file for TLS"))
    ssl_cert: str | None = attrs.field(default=None, metadata=_doc("client certificate file for TLS"))
    ssl_key: str | None = attrs.field(default=None, metadata=_doc("client key file for TLS"))
    connect_timeout: float = attrs.field(default=10.0, metadata=_doc(
        "how long to wait for the server", kind="duration", min=0.1))

    def database_name(self, override: str | None = None) -> str | None:
        """The database the commands work on: ``override``, the ``database`` key, or the DSN's path."""
        if override:
            return override
        if self.database:
            return self.database
        if self.dsn:
            return ConnectionSpec.parse(self.dsn).database
        return None

    def to_dsn(self, database: str | None = None) -> str:
        """A DSN for PyMySQL-based calls, pointing at ``database`` (default: the configured one)."""
        name = self.database_name(database) or ""
        if self.dsn:
            parts = urlsplit(self.dsn)
            return urlunsplit(parts._replace(path="/" + quote(name, safe="")))
        auth = quote(self.username, safe="") + (f":{quote(self.password, safe='')}" if self.password else "")
        options = {"unix_socket": self.unix_socket, "ssl_ca": self.ssl_ca, "ssl_cert": self.ssl_cert,
                   "ssl_key": self.ssl_key, "connect_timeout": f"{self.connect_timeout:g}"}
        query = "&".join(f"{key}={quote(str(value), safe='/')}" for key, value in options.items() if value)
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"mysql://{auth}@{host}:{self.port}/{quote(name, safe='')}?{query}"

    def describe(self) -> str:
        """Where the server is, without the password."""
        return ConnectionSpec.parse(self.to_dsn()).redacted()


#: Every object storage call gives up after these (seconds) and retries this often.
_CONNECTION_TIMEOUT = 10.0
_READ_TIMEOUT = 60.0
_RETRY_ATTEMPTS = 3


@attrs.frozen
class LocalStorage:
    base_path: str = attrs.field(default="./backups", metadata=_doc("folder holding the store (created on first use)"))
    permissions: int = attrs.field(default=0o700, metadata=_doc(
        "octal mode of the store's folders, as a string (\"0700\"); files get the same bits without x",
        kind="mode"))


@attrs.frozen
class S3Storage:
    bucket: str = attrs.field(default="", metadata=_doc("bucket name (required for provider s3)"))
    region: str | None = attrs.field(default=None, metadata=_doc("AWS region, e.g. eu-west-1"))
    prefix: str = attrs.field(default="", metadata=_doc("folder inside the bucket, e.g. mysql-backups/"))
    endpoint: str | None = attrs.field(default=None, metadata=_doc(
        "S3-compatible endpoint URL (MinIO, Ceph, moto); default AWS", kind="url"))
    access_key: str | None = attrs.field(default=None, metadata=_doc(
        "access key id; default: the AWS credential chain (env, profile, instance role)", secret=True))
    secret_key: str | None = attrs.field(default=None, metadata=_doc("secret access key", secret=True))
    multipart_threshold: int | None = attrs.field(default=None, metadata=_doc(
        "objects larger than this are uploaded in parts (s3fs: one block; with multipart_chunksize, that wins)",
        kind="size", min=5 << 20))
    multipart_chunksize: int | None = attrs.field(default=None, metadata=_doc(
        "the size of each uploaded part (s3fs default_block_size; S3 needs at least 5 MiB)", kind="size", min=5 << 20))
    max_concurrency: int | None = attrs.field(default=None, metadata=_doc(
        "parts uploaded at once (s3fs max_concurrency; default 10)", min=1))
    use_accelerate_endpoint: bool = attrs.field(default=False, metadata=_doc(
        "S3 Transfer Acceleration (botocore s3.use_accelerate_endpoint; the bucket must have it enabled); "
        "ignored with an endpoint, which has no accelerate endpoint"))
    connection_timeout: float = attrs.field(default=_CONNECTION_TIMEOUT, metadata=_doc(
        "how long opening a connection to S3 may take (botocore connect_timeout)", kind="duration", min=1))
    read_timeout: float = attrs.field(default=_READ_TIMEOUT, metadata=_doc(
        "how long S3 may be silent while answering (botocore read_timeout)", kind="duration", min=1))
    retry_attempts: int = attrs.field(default=_RETRY_ATTEMPTS, metadata=_doc(
        "retries of a failed request (botocore retries.max_attempts; s3fs retries a timed-out one 5 times more)",
        min=0))


@attrs.frozen
class AzureStorage:
    account_name: str = attrs.field(default="", metadata=_doc("storage account name"))
    account_key: str | None = attrs.field(default=None, metadata=_doc("storage account key", secret=True))
    container_name: str = attrs.field(default="", metadata=_doc("blob container (required for provider azure)"))
    prefix: str = attrs.field(default="", metadata=_doc("folder inside the container"))
    endpoint: str | None = attrs.field(default=None, metadata=_doc(
        "blob service endpoint, e.g. http://127.0.0.1:10000/devstoreaccount1 for Azurite", kind="url"))
    connection_string: str | None = attrs.field(default=None, metadata=_doc(
        "a whole connection string instead of account_name/account_key/endpoint", secret=True))
    connection_timeout: float = attrs.field(default=_CONNECTION_TIMEOUT, metadata=_doc(
        "how long opening a connection to the blob service may take (azure-storage-blob connection_timeout; "
        "\"5m\")", kind="duration", min=1))
    read_timeout: float = attrs.field(default=_READ_TIMEOUT, metadata=_doc(
        "how long the service may be silent while answering (azure-storage-blob read_timeout)", kind="duration",
        min=1))
    retry_attempts: int = attrs.field(default=_RETRY_ATTEMPTS, metadata=_doc(
        "retries of a failed request (azure-storage-blob retry_total)", min=0))


@attrs.frozen
class GcsStorage:
    bucket: str = attrs.field(default="", metadata=_doc("bucket name (required for provider gcs)"))
    credentials_path: str | None = attrs.field(default=None, metadata=_doc(
        "service account JSON file; default: application default credentials (anonymous with `endpoint`)"))
    project_id: str | None = attrs.field(default=None, metadata=_doc("Google Cloud project id"))
    prefix: str = attrs.field(default="", metadata=_doc("folder inside the bucket"))
    endpoint: str | None = attrs.field(default=None, metadata=_doc(
        "storage endpoint URL (an emulator or proxy, spoken to over the JSON API alone); default Google",
        kind="url"))
    connection_timeout: float = attrs.field(default=_CONNECTION_TIMEOUT, metadata=_doc(
        "how long opening a connection to GCS may take (gcsfs requests_timeout, aiohttp sock_connect)",
        kind="duration", min=1))
    read_timeout: float = attrs.field(default=_READ_TIMEOUT, metadata=_doc(
        "how long GCS may be silent while answering (aiohttp sock_read; gcsfs retries a request 5 times)",
        kind="duration", min=1))


#: The providers with a section of their own; ``url`` reaches any other protocol fsspec knows.
PROVIDERS = ("local", "s3", "azure", "gcs")


@attrs.frozen
class StorageConfig:
    provider: str = attrs.field(default="local", metadata=_doc(
        "where backups are stored: local, s3, azure, gcs (their sections below), or any protocol fsspec knows "
        "(with url)", kind="protocol"))
    local: LocalStorage = attrs.field(factory=LocalStorage, metadata=_doc("provider local"))
    s3: S3Storage = attrs.field(factory=S3Storage, metadata=_doc("provider s3"))
    azure: AzureStorage = attrs.field(factory=AzureStorage, metadata=_doc("provider azure"))
    gcs: GcsStorage = attrs.field(factory=GcsStorage, metadata=_doc("provider gcs"))
    url: str | None = attrs.field(default=None, metadata=_doc(
        "the store as an fsspec URL, protocol://path, for a provider without a section: one a package registers "
        "under the fsspec.specs entry point, or fsspec.register_implementation; provider may then be left out",
        kind="storage_url"))
    options: dict[str, Any] = attrs.field(factory=dict, metadata=_doc(
        "keyword arguments for the filesystem of url (host, username, ...), values as written", kind="options",
        secret=True))


@attrs.frozen
class CompressionConfig:
    enabled: bool = attrs.field(default=True, metadata=_doc("compress stored objects"))
    algorithm: str = attrs.field(default="lz4", metadata=_doc(
        "gzip, lz4, zstd (extra zstd), or a codec a plugin registers, by its name (an unknown name is refused "
        "with the list of those installed)", kind="codec"))
    level: int | None = attrs.field(default=None, metadata=_doc(
        "codec level: gzip 0-9, lz4 0-16, zstd 1-22, a plugin's as it says; default the codec's"))
    threshold: int = attrs.field(default=256, metadata=_doc(
        "objects smaller than this are stored uncompressed (bytes, or \"1KB\" = 1024)", kind="size", min=0))

    @property
    def codec(self) -> str:
        return self.algorithm if self.enabled else "none"


@attrs.frozen
class EncryptionConfig:
    enabled: bool = attrs.field(default=False, metadata=_doc("encrypt new backups (AES-256-GCM)"))
    algorithm: str = attrs.field(default="aes256", metadata=_doc(
        "aes256 (AES-256-GCM, also written aes-256-gcm) or a cipher a plugin registers (by its name), for "
        "32-byte keys", kind="cipher"))
    key_source: str = attrs.field(default="env", metadata=_doc(
        "where the key comes from", choices=("env", "file", "direct")))
    key_env_var: str = attrs.field(default=DEFAULT_KEY_ENV_VAR, metadata=_doc(
        "variable holding the key (64 hex digits or base64 of 32 bytes) for key_source env"))
    key_file: str | None = attrs.field(default=None, metadata=_doc("file holding the key, for key_source file"))
    key: str | None = attrs.field(default=None, metadata=_doc(
        "the key itself, for key_source direct; write ${VAR}", secret=True))
    previous_key_env_vars: tuple[str, ...] = attrs.field(default=(), metadata=_doc(
        "variables holding older keys, so backups written before a rotation still open"))
    previous_key_files: tuple[str, ...] = attrs.field(default=(), metadata=_doc("files holding older keys"))
    rotation_enabled: bool = attrs.field(default=False, metadata=_doc(
        "health-check warns when the newest backup is older than rotation_days under the current key"))
    rotation_days: int = attrs.field(default=90, metadata=_doc("days between key rotations", min=1))
    accept_unsealed: bool = attrs.field(default=False, metadata=_doc(
        "read (and import) backups no configured key sealed: written without a key, or by 0.1"))

    @property
    def cipher(self) -> str:
        """The cipher's name as its plugin registers it."""
        return _CIPHER_ALIASES.get(self.algorithm, self.algorithm)


@attrs.frozen
class ValidationConfig:
    enabled: bool = attrs.field(default=True, metadata=_doc("master switch for the validate_on_* checks"))
    checksum_algorithm: str = attrs.field(default="sha256", metadata=_doc(
        "checksums of stored bytes (the store format fixes sha256)", choices=("sha256",)))
    validate_on_create: bool = attrs.field(default=True, metadata=_doc(
        "fully validate each new backup right after `backup create`"))
    validate_on_restore: bool = attrs.field(default=True, metadata=_doc(
        "validate the backup before `rollback execute` uses it"))
    dry_run_validation: bool = attrs.field(default=False, metadata=_doc(
        "run a dry run of the rollback before executing it"))
    validation_timeout: float = attrs.field(default=300.0, metadata=_doc(
        "`validate-all` starts no new validation after this long (\"5m\")", kind="duration", min=1))


@attrs.frozen
class NotificationsConfig:
    enabled: bool = attrs.field(default=False, metadata=_doc("send notifications"))
    webhook_url: str | None = attrs.field(default=None, metadata=_doc(
        "POST a JSON document for each event here (a Slack incoming webhook works)", secret=True, kind="url"))
    events: tuple[str, ...] = attrs.field(
        default=("backup.failed", "validation.failed", "rollback.failed", "health_check.failed"),
        metadata=_doc("which events to send", choices=NOTIFICATION_EVENTS))
    timeout: float = attrs.field(default=10.0, metadata=_doc("how long one POST may take", kind="duration", min=0.1))
    headers: dict[str, str] = attrs.field(factory=dict, metadata=_doc(
        "extra HTTP headers (e.g. Authorization: \"Bearer ${TOKEN}\")", secret=True))


@attrs.frozen
class LoggingConfig:
    level: str = attrs.field(default="info", metadata=_doc(
        "log level; --debug and MYSQL_SCHEMA_SYNC_LOG_LEVEL override it",
        choices=("debug", "info", "warning", "error")))
    file: str | None = attrs.field(default=None, metadata=_doc(
        "log file; default /var/log/mysql-schema-sync/backup.log when writable, else the user's state directory"))
    file_logging: bool = attrs.field(default=True, metadata=_doc("write the log file at all"))


@attrs.frozen
class BackupConfig:
    enabled: bool = attrs.field(default=True, metadata=_doc(
        "accepted for compatibility with the original tool's files; the CLI's commands ignore it"))
    storage: StorageConfig = attrs.field(factory=StorageConfig, metadata=_doc("where backups live"))
    retention: dict[str, Any] = attrs.field(factory=dict, metadata=_doc(
        "which backups to keep: max_backups, max_age, keep_daily, keep_weekly, keep_monthly, keep_tags, timezone, "
        "pre_rollback_max_age (default 30d; unlimited: never), databases (docs/retention.md); apply_on_create "
        "(bool: `backup create` applies the policy after each backup); cleanup_interval is accepted and ignored",
        kind="retention"))
    compression: CompressionConfig = attrs.field(factory=CompressionConfig, metadata=_doc("how objects are compressed"))
    encryption: EncryptionConfig = attrs.field(factory=EncryptionConfig, metadata=_doc("how objects are encrypted"))
    validation: ValidationConfig = attrs.field(factory=ValidationConfig, metadata=_doc("when backups are checked"))
    data: str = attrs.field(default="none", metadata=_doc(
        "table data a backup holds besides the schema: none, all, at-risk (with `backup create --migration`), "
        "or table names separated by commas"))
    buffer_size: int = attrs.field(default=8 << 20, metadata=_doc(
        "the memory bound of the object and data pipelines (bytes, or \"64MB\"): data chunks of about this size, "
        "frames of at most this much (and at most 4 MiB), upload and read blocks of this size (at least 5 MiB)",
        kind="size", min=4096))
    max_workers: int = attrs.field(default=1, metadata=_doc(
        "connections that read a data backup's tables at once, in one consistent snapshot (more than one needs the "
        "RELOAD privilege), and the default of `rollback execute --parallel`", min=1))
    parallel_operations: bool = attrs.field(default=True, metadata=_doc(
        "false: every backup and rollback runs on one connection, whatever max_workers says (capture too: by "
        "default it reads the columns on a second connection)"))
    streaming: bool = attrs.field(default=True, metadata=_doc(
        "objects and table data stream through memory a frame and a chunk (buffer_size) at a time; the only way "
        "they are handled, so false is refused"))
    notifications: NotificationsConfig = attrs.field(factory=NotificationsConfig, metadata=_doc("who hears about it"))
    logging: LoggingConfig = attrs.field(factory=LoggingConfig, metadata=_doc("the log file"))

    @property
    def workers(self) -> int:
        """The connections a backup or rollback may use at once."""
        return self.max_workers if self.parallel_operations else 1


@attrs.frozen
class Config:
    database: DatabaseConfig = attrs.field(factory=DatabaseConfig, metadata=_doc("the server and database"))
    backup: BackupConfig = attrs.field(factory=BackupConfig, metadata=_doc("backups"))
    #: Where the configuration came from (a path, or "<defaults>").
    source: str = attrs.field(default="<defaults>", metadata={"internal": True})

    def secrets(self) -> set[str]:
        """Every secret value in clear, for filters that scrub free text (logs, error messages)."""
        found: set[str] = set()
        _collect_secrets(self, found)
        if self.database.dsn:
            password = ConnectionSpec.parse(self.database.dsn).password
            if password:
                found.add(password)
                found.add(quote(password, safe=""))
        if self.database.password:
            found.add(quote(self.database.password, safe=""))
        return {secret for secret in found if len(secret) >= _MIN_SEARCHABLE_SECRET}

    @functools.cached_property
    def _scrubbed_secrets(self) -> tuple[str, ...]:
        # Once per configuration: scrub runs on every log line, and at debug there is one per statement.
        return tuple(sorted(self.secrets(), key=len, reverse=True))

    def scrub(self, text: str) -> str:
        """``text`` with every secret of this configuration replaced by ``***``."""
        for secret in self._scrubbed_secrets:
            text = text.replace(secret, REDACTED)
        return text


for _cls in (DatabaseConfig, LocalStorage, S3Storage, AzureStorage, GcsStorage, StorageConfig, CompressionConfig,
             EncryptionConfig, ValidationConfig, NotificationsConfig, LoggingConfig, BackupConfig, Config):
    attrs.resolve_types(_cls, globals(), locals())


# --- loading ---------------------------------------------------------------------------------------


def find_config_path(explicit: str | os.PathLike[str] | None = None, *,
                     environ: Mapping[str, str] | None = None) -> Path:
    """``--config``, else ``$MYSQL_SCHEMA_SYNC_CONFIG``, else ``./config.yaml``; the file must exist."""
    environ = os.environ if environ is None else environ
    if explicit:
        path, how = Path(explicit), "--config"
    elif environ.get(CONFIG_ENV_VAR):
        path, how = Path(environ[CONFIG_ENV_VAR]), f"${CONFIG_ENV_VAR}"
    else:
        path = Path(DEFAULT_CONFIG_FILE)
        if not path.is_file():
            raise ConfigError([
                f"no configuration file: ./{DEFAULT_CONFIG_FILE} does not exist; pass --config PATH or set "
                f"{CONFIG_ENV_VAR} (docs/config.md shows an example)"
            ])
        return path
    if not path.is_file():
        raise ConfigError([f"configuration file {path} (from {how}) does not exist"], source=str(path))
    return path


def load_config(path: str | os.PathLike[str], *, environ: Mapping[str, str] | None = None) -> Config:
    """Read and validate a YAML configuration file."""
    where = os.fspath(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise ConfigError([f"cannot read {where}: {reason}"], source=where) from exc
    return parse_config(text, source=where, environ=environ)


def _yaml() -> Any:
    # PyYAML ships no type stubs; the module is used through this one typed door.
    return importlib.import_module("yaml")


def parse_config(text: str, *, source: str = "<string>", environ: Mapping[str, str] | None = None) -> Config:
    """Validate a YAML document; raises :class:`ConfigError` listing every problem."""
    yaml = _yaml()
    try:
        document = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        at = f"line {mark.line + 1}, column {mark.column + 1}: " if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise ConfigError([f"not valid YAML: {at}{problem}"], source=source) from None
    if document is None:
        document = {}
    return from_mapping(document, source=source, environ=environ)


def from_mapping(document: Any, *, source: str = "<mapping>", environ: Mapping[str, str] | None = None) -> Config:
    problems: list[str] = []
    expanded = _canonical_layout(_expand(document, "", os.environ if environ is None else environ, problems),
                                 problems)
    try:
        config = _converter.structure(expanded, Config)
    except (cattrs.ClassValidationError, ValueError) as exc:
        raise ConfigError(problems + _messages(exc, expanded), source=source) from None
    if not problems:  # cross-key checks on values already known good (no cascades from a bad one)
        _check(config, problems)
    if problems:
        raise ConfigError(problems, source=source)
    return attrs.evolve(config, source=source)


# --- the two layouts --------------------------------------------------------------------------------

#: Sections of ``backup`` that a configuration may also write at the top level (the original tool's
#: layout, which the operator's guide uses); ``backup.<section>`` is the canonical place.
TOP_LEVEL_ALIASES = ("storage", "retention", "compression", "encryption", "validation", "notifications", "logging")


def _canonical_layout(document: Any, problems: list[str]) -> Any:
    """``document`` with top-level backup sections moved under ``backup``; both places at once is a problem."""
    if not isinstance(document, Mapping) or not any(name in document for name in TOP_LEVEL_ALIASES):
        return document
    backup = document.get("backup")
    if backup is not None and not isinstance(backup, Mapping):
        return document  # the structuring says what is wrong with it
    moved = dict(backup or {})
    for name in TOP_LEVEL_ALIASES:
        if name not in document:
            continue
        if name in moved:
            problems.append(f"{name}: also given as backup.{name}; keep one (backup.{name} is the canonical place, "
                            f"{name} at the top level its alias)")
        moved[name] = document[name]
    return {**{key: value for key, value in document.items() if key not in TOP_LEVEL_ALIASES}, "backup": moved}


def _elsewhere(name: str, path: str) -> str:
    """Where else in the schema a key ``name`` is valid, as a hint for an unknown key at ``path``."""
    places = [place for place in _key_places().get(name, ()) if place != path]
    return f"; {name} is a key of {' and '.join(places)}" if places else ""


@functools.cache
def _key_places() -> dict[str, list[str]]:
    """Every key of the schema, by name: the sections it is valid in."""
    return _places(Config, "", {})


def _places(cls: type, path: str, found: dict[str, list[str]]) -> dict[str, list[str]]:
    for name, field in _public_fields(cls).items():
        found.setdefault(name, []).append(path or "the top level")
        annotation, _ = _unwrap(field.type)
        if attrs.has(annotation):
            _places(annotation, _join(path, name), found)
    return found


# --- ${VAR} expansion ------------------------------------------------------------------------------


def _expand(value: Any, path: str, environ: Mapping[str, str], problems: list[str]) -> Any:
    if isinstance(value, str):
        def replace(match: re.Match[str]) -> str:
            if match.group(0) == "$$":
                return "$"
            name, default = match.group(1), match.group(2)
            if name in environ and (environ[name] != "" or default is None):
                return environ[name]
            if default is not None:
                return default
            problems.append(f"{path or '<top>'}: environment variable {name} is not set (referenced as ${{{name}}}); "
                            f"set it, or write ${{{name}:-default}}")
            return ""

        return _VAR.sub(replace, value)
    if isinstance(value, Mapping):
        return {key: _expand(item, _join(path, str(key)), environ, problems) for key, item in value.items()}
    if isinstance(value, list):
        return [_expand(item, f"{path}[{index}]", environ, problems) for index, item in enumerate(value)]
    return value


# --- structuring against the schema: one cattrs converter, its hooks made from the field metadata ---

_converter = cattrs.Converter(forbid_extra_keys=True, detailed_validation=True)


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def _public_fields(cls: type) -> dict[str, attrs.Attribute[Any]]:
    return {name: field for name, field in attrs.fields_dict(cls).items() if not field.metadata.get("internal")}


@_converter.register_structure_hook_factory(attrs.has)
def _section_hook(cls: type[Any]) -> Callable[[Any, Any], Any]:
    """A section: a mapping of its public fields, each structured by :func:`_field_hook`."""
    fields = _public_fields(cls)
    overrides: dict[str, Any] = {name: cattrs.gen.override(struct_hook=_field_hook(fields[name])) if name in fields
                                 else cattrs.gen.override(omit=True) for name in attrs.fields_dict(cls)}
    structure = cattrs.gen.make_dict_structure_fn(cls, _converter, **overrides)

    def hook(data: Any, _: Any) -> Any:
        if not isinstance(data, Mapping):
            raise ValueError(f"expected a mapping with keys {', '.join(fields)}, got {_describe(data)}")
        return structure(data, cls)

    return hook


def _field_hook(field: attrs.Attribute[Any]) -> Callable[[Any, Any], Any]:
    meta = field.metadata
    annotation, optional = _unwrap(field.type)
    if attrs.has(annotation):  # null for a section: its defaults
        return lambda raw, _: annotation() if raw is None else _converter.structure(raw, annotation)
    by_kind = {"duration": parse_duration, "size": parse_size, "mode": _parse_mode, "retention": _retention,
               "codec": _codec_name, "cipher": _cipher_name, "protocol": _provider, "storage_url": _storage_url,
               "options": _parse_options}
    by_type = {bool: _parse_bool, int: _parse_int, float: _parse_float, tuple: _parse_strings,
               dict: _parse_string_mapping}
    parse = by_kind.get(meta.get("kind", "")) or by_type.get(typing.get_origin(annotation) or annotation, _parse_str)

    def hook(raw: Any, _: Any) -> Any:
        if raw is not None:
            return _checked(parse(raw), raw, meta)
        if optional:
            return None
        raise ValueError(f"a value is required here ({_expected(annotation, meta)}); remove the key for the default")

    return hook


def _checked(value: Any, raw: Any, meta: Mapping[str, Any]) -> Any:
    """``value`` if it keeps the field's range, kind (url, dsn) and choices; else a problem saying why."""
    low, high = meta.get("min"), meta.get("max")
    if (low is not None and value < low) or (high is not None and value > high):
        bounds = f"from {low} to {high}" if low is not None and high is not None else (
            f"at least {low}" if low is not None else f"at most {high}")
        raise ValueError(f"{raw!r} is out of range; allowed: {bounds}")
    if meta.get("kind") == "url" and not re.match(r"^https?://[^/\s]+", value):
        raise ValueError(f"{REDACTED if meta.get('secret') else value!r} is not an http:// or https:// URL")
    if meta.get("kind") == "dsn":
        try:
            ConnectionSpec.parse(value)
        except InvalidSourceError as exc:
            raise ValueError(exc.message) from None
    choices = meta.get("choices") or ()
    for item in (value if isinstance(value, tuple) else (value,)) if choices else ():
        if item not in choices:
            raise ValueError(f"{item!r} is not allowed{_hint(str(item), choices)}; allowed: {', '.join(choices)}")
    return value


def _hint(name: str, allowed: Iterable[str]) -> str:
    close = difflib.get_close_matches(name, list(allowed), n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


def _messages(error: Exception, document: Any) -> list[str]:
    """``path: message`` for each problem of a cattrs error, in the order of the keys in the document."""
    order = {path: index for index, path in enumerate(_paths(document, ""))}
    found = sorted(_problems(error, ""), key=lambda problem: order.get(problem[0], len(order)))
    return [f"{path or 'the top level'}: {message}" for path, message in found]


def _paths(value: Any, path: str) -> Iterator[str]:
    yield path
    for key, item in value.items() if isinstance(value, Mapping) else ():
        yield from _paths(item, _join(path, str(key)))


def _problems(error: Exception, path: str) -> Iterator[tuple[str, str]]:
    """(key path, message) for every leaf of a cattrs error; the notes cattrs adds name the attributes."""
    if isinstance(error, cattrs.ClassValidationError):
        for inner in error.exceptions:
            names = [note.name for note in getattr(inner, "__notes__", [])
                     if isinstance(note, cattrs.AttributeValidationNote)]
            yield from _problems(inner, _join(path, names[-1]) if names else path)
    elif isinstance(error, cattrs.ForbiddenExtraKeysError):
        fields = list(_public_fields(error.cl))
        for name in map(str, error.extra_fields):
            hint = _elsewhere(name, path or "the top level") or _hint(name, fields)
            yield (_join(path, name), f"unknown key{hint}; allowed in {path or 'the top level'}: "
                   f"{', '.join(fields)}")
    elif isinstance(error, ValueError):  # a SettingsError's subject names a key inside the value (retention)
        key = error.subject if isinstance(error, SettingsError) else None
        yield (_join(path, key) if isinstance(key, str) else path), str(error)
    else:
        raise error


def _describe(value: Any) -> str:
    if value is None:
        return "nothing (null)"
    if isinstance(value, bool):
        return f"a boolean ({str(value).lower()})"
    if isinstance(value, Mapping):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    return f"{type(value).__name__} {value!r}"


def _unwrap(annotation: Any) -> tuple[Any, bool]:
    """``X | None`` -> (X, True); anything else -> (it, False)."""
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        members = [arg for arg in typing.get_args(annotation) if arg is not type(None)]
        return members[0], len(members) < len(typing.get_args(annotation))
    return annotation, False


def _is_scalar(value: Any) -> bool:
    return isinstance(value, str | int | float) and not isinstance(value, bool)


def _parse_str(raw: Any) -> str:
    if isinstance(raw, Mapping | list | bool):
        raise ValueError(f"expected a string, got {_describe(raw)}")
    return str(raw)


def _parse_strings(raw: Any) -> tuple[str, ...]:
    items = raw if isinstance(raw, list) else [raw] if isinstance(raw, str) else None
    if items is None or not all(_is_scalar(item) for item in items):
        raise ValueError(f"expected a list of strings, got {_describe(raw)}")
    return tuple(str(item) for item in items)


def _parse_string_mapping(raw: Any) -> dict[str, str]:
    if not isinstance(raw, Mapping) or not all(_is_scalar(value) for value in raw.values()):
        raise ValueError(f"expected a mapping of names to strings, got {_describe(raw)}")
    return {str(key): str(value) for key, value in raw.items()}


def _codec_name(raw: Any) -> str:
    """A codec some plugin registers (the plugin manager is the one list); a built-in whose extra is
    missing is known, and the cross-check says which package to install."""
    from schemasync_backup.plugins.manager import default_registry

    name = _parse_str(raw)
    if name not in _CODEC_PACKAGES:
        try:
            default_registry().codec(name)
        except SchemaSyncBackupError as exc:
            raise ValueError(exc.message) from None
    return name


def _cipher_name(raw: Any) -> str:
    from schemasync_backup.plugins.manager import default_registry

    name = _parse_str(raw)
    try:
        default_registry().cipher(_CIPHER_ALIASES.get(name, name))
    except SchemaSyncBackupError as exc:
        raise ValueError(exc.message) from None
    return name


def _provider(raw: Any) -> str:
    """A provider with a section, or a protocol fsspec knows (fsspec's registry is the one list)."""
    name = _parse_str(raw)
    if name not in PROVIDERS:
        _known_protocol(name)
    return name


def _storage_url(raw: Any) -> str:
    url = _parse_str(raw)
    if "://" not in url:
        raise ValueError(f"{url!r} is not a URL: write protocol://path (a local folder goes in local.base_path)")
    _known_protocol(_protocol(url))
    return url


def _known_protocol(protocol: str) -> None:
    from schemasync_backup.store.fs import check_protocol

    try:
        check_protocol(protocol)
    except SchemaSyncBackupError as exc:
        raise ValueError(exc.message) from None


def _parse_options(raw: Any) -> dict[str, Any]:
    if not isinstance(raw, Mapping) or not all(_is_scalar(value) or isinstance(value, bool) for value in raw.values()):
        raise ValueError(f"expected a mapping of option names to values, got {_describe(raw)}")
    return {str(key): value for key, value in raw.items()}


def _retention(raw: Any) -> dict[str, Any]:
    """The retention section, checked by the retention module itself (one owner of its rules)."""
    if not isinstance(raw, Mapping):
        raise ValueError(f"expected a mapping of retention settings, got {_describe(raw)}")
    settings = {str(key): value for key, value in raw.items()}
    for key, parse in _CLI_RETENTION_KEYS.items():
        if key in settings:
            try:
                settings[key] = parse(settings[key])
            except ValueError as exc:
                raise SettingsError(str(exc), subject=key) from None
    try:
        retention_policy(settings)
    except SchemaSyncBackupError as exc:
        subject = exc.subject if isinstance(exc.subject, str) and exc.subject in settings else None
        raise SettingsError(exc.message, subject=subject) from None
    return settings


def retention_policy(settings: Mapping[str, Any]) -> RetentionPolicy:
    """The RetentionPolicy of the ``backup.retention`` section (without the keys the CLI reads itself)."""
    from schemasync_backup.store.retention import RetentionPolicy

    return RetentionPolicy.from_dict({key: value for key, value in settings.items()
                                      if key not in _CLI_RETENTION_KEYS})


def _expected(annotation: Any, meta: Mapping[str, Any]) -> str:
    if meta.get("choices"):
        return "one of " + ", ".join(meta["choices"])
    return {bool: "true or false", int: "a whole number", float: "a number", str: "a string"}.get(annotation, "a value")


def _parse_bool(raw: Any) -> bool:
    if isinstance(raw, bool):
        return raw
    if isinstance(raw, str) and raw.strip().lower() in _TRUE | _FALSE:
        return raw.strip().lower() in _TRUE
    raise ValueError(f"expected true or false, got {_describe(raw)}")


def _parse_int(raw: Any) -> int:
    if isinstance(raw, bool) or (isinstance(raw, float) and not raw.is_integer()):
        raise ValueError(f"expected a whole number, got {_describe(raw)}")
    if isinstance(raw, int | float):
        return int(raw)
    if isinstance(raw, str) and re.fullmatch(r"\s*[-+]?\d+\s*", raw):
        return int(raw)
    raise ValueError(f"expected a whole number, got {_describe(raw)}")


def _parse_float(raw: Any) -> float:
    if isinstance(raw, int | float) and not isinstance(raw, bool):
        return float(raw)
    if isinstance(raw, str):
        try:
            return float(raw)
        except ValueError:
            pass
    raise ValueError(f"expected a number, got {_describe(raw)}")


def parse_duration(raw: Any) -> float:
    """Seconds from ``"168h"``, ``"7d"``, ``"1h30m"``, ``"500ms"`` or a plain number of seconds.

    The grammar of :mod:`schemasync_backup.durations`, the one retention and prune read too.
    """
    try:
        return durations.parse_duration(raw).total_seconds()
    except ValueError as exc:
        raise ValueError(f"{exc}, got {_describe(raw)}") from None


def parse_size(raw: Any) -> int:
    """Bytes from ``1024``, ``"10KB"``, ``"64MiB"``."""
    if isinstance(raw, int) and not isinstance(raw, bool):
        return raw
    if isinstance(raw, str):
        match = _SIZE.match(raw)
        if match and match.group(2).lower() in _SIZE_UNITS:
            return int(float(match.group(1)) * _SIZE_UNITS[match.group(2).lower()])
    raise SettingsError(f"expected a size in bytes like 1024, \"10KB\" or \"64MiB\", got {_describe(raw)}")


def _parse_mode(raw: Any) -> int:
    text = str(raw).strip() if isinstance(raw, str | int) and not isinstance(raw, bool) else ""
    if isinstance(raw, int) and not isinstance(raw, bool) and raw > 0o777:
        # YAML reads an unquoted 0700 as the integer 700 (or 448 under YAML 1.1's octal rule).
        text = str(raw)
    if re.fullmatch(r"0?o?[0-7]{3}", text):
        return int(text.replace("o", "")[-3:], 8)
    raise ValueError(f"expected an octal mode like \"0700\" or \"0750\" (quote it), got {_describe(raw)}")

#: Retention keys this CLI reads itself; the rest belong to the retention policy.
_CLI_RETENTION_KEYS: dict[str, Callable[[Any], Any]] = {"cleanup_interval": parse_duration,
                                                        "apply_on_create": _parse_bool}


# --- cross-field checks ----------------------------------------------------------------------------


def _check(config: Config, problems: list[str]) -> None:
    _check_database(config.database, problems)
    _check_storage(config.backup.storage, problems)
    _check_backup(config.backup, problems)


def _check_database(database: DatabaseConfig, problems: list[str]) -> None:
    if database.dsn:
        clashing = [name for name in ("host", "port", "username", "password", "unix_socket", "ssl_ca", "ssl_cert",
                                      "ssl_key") if getattr(database, name) != getattr(DatabaseConfig(), name)]
        if clashing:
            problems.append(f"database.dsn: cannot be combined with database.{', database.'.join(clashing)}; "
                            "put everything in the DSN or use the separate keys")
        in_dsn = ConnectionSpec.parse(database.dsn).database
        if in_dsn and database.database and in_dsn != database.database:
            problems.append(f"database.database: {database.database!r} differs from the database in database.dsn "
                            f"({in_dsn!r}); give it once")


def _check_storage(storage: StorageConfig, problems: list[str]) -> None:
    required = {"s3": [("bucket", storage.s3.bucket)],
                "azure": [("container_name", storage.azure.container_name)],
                "gcs": [("bucket", storage.gcs.bucket)], "local": [("base_path", storage.local.base_path)]}
    if storage.url is not None:
        if storage.provider not in ("local", _protocol(storage.url)):
            problems.append(f"backup.storage.url: its protocol is {_protocol(storage.url)}, but backup.storage."
                            f"provider is {storage.provider}; remove provider (url says where the store is)")
        return
    if storage.provider not in PROVIDERS:
        problems.append(f"backup.storage.url: required when backup.storage.provider is {storage.provider} (a "
                        f"provider without a section of its own): write url: {storage.provider}://...")
        return
    for key, value in required[storage.provider]:
        if not value:
            problems.append(f"backup.storage.{storage.provider}.{key}: required when backup.storage.provider is "
                            f"{storage.provider}")
    if storage.provider == "azure" and not storage.azure.connection_string and not storage.azure.account_name:
        problems.append("backup.storage.azure.account_name: required (or give backup.storage.azure.connection_string)")
    if storage.provider == "s3" and bool(storage.s3.access_key) != bool(storage.s3.secret_key):
        problems.append("backup.storage.s3: give both access_key and secret_key, or neither (to use the AWS "
                        "credential chain)")


def _check_backup(backup: BackupConfig, problems: list[str]) -> None:
    compression = backup.compression
    if compression.level is not None and compression.algorithm in _LEVELS:  # a plugin checks its own levels
        low, high = _LEVELS[compression.algorithm]
        if not low <= compression.level <= high:
            problems.append(f"backup.compression.level: {compression.level} is out of range for "
                            f"{compression.algorithm}; allowed: from {low} to {high}")
    encryption = backup.encryption
    if encryption.enabled:
        if encryption.key_source == "file" and not encryption.key_file:
            problems.append("backup.encryption.key_file: required when key_source is file")
        if encryption.key_source == "direct" and not encryption.key:
            problems.append("backup.encryption.key: required when key_source is direct (write key: ${VAR})")
        if encryption.key_source == "env" and not encryption.key_env_var:
            problems.append("backup.encryption.key_env_var: required when key_source is env")
    notifications = backup.notifications
    if notifications.enabled and not notifications.webhook_url:
        problems.append("backup.notifications.webhook_url: required when notifications are enabled")
    if compression.enabled and compression.algorithm in _CODEC_PACKAGES:
        package, extra = _CODEC_PACKAGES[compression.algorithm]
        if importlib.util.find_spec(package) is None:
            problems.append(f"backup.compression.algorithm: {compression.algorithm} needs the {package} package, which "
                            f"is not installed: pip install 'schemasync_backup[{extra}]', or choose lz4 or gzip")
    provider = backup.storage.provider
    provider_package = _PROVIDER_PACKAGES.get(provider) if backup.storage.url is None else None
    if provider_package is not None and importlib.util.find_spec(provider_package) is None:
        problems.append(f"backup.storage.provider: {provider} needs the {provider_package} package, which "
                        f"is not installed: pip install 'schemasync_backup[{provider}]'")
    if not backup.streaming:
        problems.append("backup.streaming: false is not supported: objects and table data always stream, a frame "
                        "and a chunk of at most backup.buffer_size in memory at a time; write true or remove the key")


# --- redaction -----------------------------------------------------------------------------------------


def _collect_secrets(value: Any, found: set[str]) -> None:
    for field in attrs.fields(type(value)):
        item = getattr(value, field.name)
        if attrs.has(type(item)):
            _collect_secrets(item, found)
        elif field.metadata.get("secret") and item:
            if isinstance(item, dict):  # headers, options: each text and its last word ("Bearer <token>")
                texts = [value for value in item.values() if isinstance(value, str) and value.split()]
                found.update(texts)
                found.update(text.split()[-1] for text in texts)
            elif field.metadata.get("kind") == "dsn":
                password = ConnectionSpec.parse(item).password
                if password:
                    found.add(password)
            else:
                found.add(str(item))


def redacted(config: Config) -> dict[str, Any]:
    """The configuration as plain data with every secret replaced by ``***``: safe to print or log."""
    return _redact(config)


def _redact(value: Any) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for field in attrs.fields(type(value)):
        if field.metadata.get("internal"):
            continue
        item = getattr(value, field.name)
        meta = field.metadata
        if attrs.has(type(item)):
            out[field.name] = _redact(item)
        elif meta.get("kind") == "dsn" and item:
            out[field.name] = redact_dsn(item)
        elif meta.get("secret") and item:
            out[field.name] = dict.fromkeys(item, REDACTED) if isinstance(item, dict) else REDACTED
        elif meta.get("kind") == "mode":
            out[field.name] = f"0{item:o}"
        elif isinstance(item, tuple):
            out[field.name] = list(item)
        else:
            out[field.name] = item
    return out


# --- from configuration to library objects ---------------------------------------------------------


def storage_location(storage: StorageConfig) -> tuple[str, dict[str, Any]]:
    """The fsspec URL and storage options for the configured provider."""
    if storage.url is not None:
        return storage.url, dict(storage.options)
    if storage.provider == "local":
        return os.path.abspath(os.path.expanduser(storage.local.base_path)), {}
    return {"s3": _s3_location, "azure": _azure_location, "gcs": _gcs_location}[storage.provider](storage)


def _s3_location(storage: StorageConfig) -> tuple[str, dict[str, Any]]:
    s3 = storage.s3
    options: dict[str, Any] = {}
    if s3.access_key:
        options.update(key=s3.access_key, secret=s3.secret_key)
    client = {key: value for key, value in (("endpoint_url", s3.endpoint), ("region_name", s3.region)) if value}
    if client:
        options["client_kwargs"] = client
    # s3fs uploads a file in one request while it fits one block and in parts of a block beyond: the
    # block size is both the threshold and the part size.
    block = s3.multipart_chunksize or s3.multipart_threshold
    if block:
        options["default_block_size"] = block
    if s3.max_concurrency:
        options["max_concurrency"] = s3.max_concurrency
    # Acceleration is an AWS endpoint; an S3-compatible store or emulator at its own endpoint has none
    # (botocore refuses the pair), so the guide's settings work there too.
    if s3.use_accelerate_endpoint and not s3.endpoint:
        options["config_kwargs"] = {"s3": {"use_accelerate_endpoint": True}}
    options.update(_timeouts(s3.connection_timeout, s3.read_timeout), retry_attempts=s3.retry_attempts)
    return _url("s3", s3.bucket, s3.prefix), options


def _azure_location(storage: StorageConfig) -> tuple[str, dict[str, Any]]:
    azure = storage.azure
    options: dict[str, Any]
    if azure.connection_string:
        options = {"connection_string": azure.connection_string}
    elif azure.endpoint:
        scheme = azure.endpoint.split("://", 1)[0]
        options = {"connection_string": (
            f"DefaultEndpointsProtocol={scheme};AccountName={azure.account_name};"
            f"AccountKey={azure.account_key or ''};BlobEndpoint={azure.endpoint.rstrip('/')};")}
    else:
        options = {"account_name": azure.account_name}
        if azure.account_key:
            options["account_key"] = azure.account_key
    options.update(_timeouts(azure.connection_timeout, azure.read_timeout), retry_attempts=azure.retry_attempts)
    return _url("az", azure.container_name, azure.prefix), options


def _gcs_location(storage: StorageConfig) -> tuple[str, dict[str, Any]]:
    gcs = storage.gcs
    options: dict[str, Any] = {}
    if gcs.project_id:
        options["project"] = gcs.project_id
    if gcs.endpoint:
        options["endpoint_url"] = gcs.endpoint
    if gcs.credentials_path:
        options["token"] = gcs.credentials_path
    elif gcs.endpoint:
        options["token"] = "anon"  # an emulator or proxy: no Google credentials to look for
    options.update(_timeouts(gcs.connection_timeout, gcs.read_timeout))
    return _url("gs", gcs.bucket, gcs.prefix), options


def _timeouts(connection: float, read: float) -> dict[str, float]:
    """The store's timeout options (store.fs gives them to each provider's library in its own terms)."""
    return {"connection_timeout": connection, "read_timeout": read}


def _url(scheme: str, bucket: str, prefix: str) -> str:
    prefix = prefix.strip("/")
    return f"{scheme}://{bucket}" + (f"/{prefix}" if prefix else "")


#: The provider of each URL scheme and the key naming its bucket or container (the inverse of _url).
_SCHEME_PROVIDERS = {"s3": ("s3", "bucket"), "s3a": ("s3", "bucket"), "az": ("azure", "container_name"),
                     "abfs": ("azure", "container_name"), "gs": ("gcs", "bucket"), "gcs": ("gcs", "bucket")}


def storage_keys(url: str) -> dict[str, str]:
    """The ``backup.storage`` keys that point a configuration at ``url``."""
    scheme, _, rest = url.partition("://") if "://" in url else ("file", "", url)
    if scheme == "file":
        return {"backup.storage.provider": "local", "backup.storage.local.base_path": rest}
    if scheme not in _SCHEME_PROVIDERS:  # a provider without a section of its own
        return {"backup.storage.provider": scheme, "backup.storage.url": url}
    provider, bucket_key = _SCHEME_PROVIDERS[scheme]
    bucket, _, prefix = rest.partition("/")
    return {"backup.storage.provider": provider, f"backup.storage.{provider}.{bucket_key}": bucket,
            f"backup.storage.{provider}.prefix": prefix.strip("/")}


def encryption_keys(encryption: EncryptionConfig) -> list[EncryptionKey]:
    """The configured keys, the writing key first; empty when encryption is off and no old keys are named."""
    keys: list[EncryptionKey] = []
    if encryption.enabled:
        if encryption.key_source == "env":
            keys.append(EncryptionKey.from_env(encryption.key_env_var))
        elif encryption.key_source == "file":
            keys.append(EncryptionKey.from_file(os.path.expanduser(encryption.key_file or "")))
        else:
            keys.append(EncryptionKey.from_value(encryption.key or "", origin="backup.encryption.key"))
    for name in encryption.previous_key_env_vars:
        keys.append(EncryptionKey.from_env(name))
    for path in encryption.previous_key_files:
        keys.append(EncryptionKey.from_file(os.path.expanduser(path)))
    return keys


def open_store(config: Config, *, url: str | None = None, registry: Registry | None = None,
               keys: bool = True) -> BackupStore:
    """The BackupStore the configuration describes (or at ``url``, with the same settings).

    ``keys=False`` opens it without loading any key (reading encrypted backups then fails): for
    checks that must work when a key is missing.
    """
    from schemasync_backup.store.store import BackupStore

    configured_url, options = storage_location(config.backup.storage)
    if url is not None and url != configured_url:
        options = options if _protocol(url) == _protocol(configured_url) else {}
    else:
        url = configured_url
    local = config.backup.storage.local
    compression = config.backup.compression
    encryption = config.backup.encryption
    return BackupStore.open(
        url,
        storage_options=options,
        compression=compression.codec,
        compression_level=compression.level if compression.enabled else None,
        compression_threshold=compression.threshold,
        encryption_keys=encryption_keys(encryption) if keys else None,
        encrypt=encryption.enabled and keys,
        cipher=encryption.cipher,
        file_mode=local.permissions & 0o666,
        dir_mode=local.permissions,
        registry=registry,
        accept_unsealed=encryption.accept_unsealed,
        buffer_size=config.backup.buffer_size,
    )


def _protocol(url: str) -> str:
    return url.split("://", 1)[0] if "://" in url else "file"


# --- the reference for docs/config.md -------------------------------------------------------------


def reference(cls: type[Any] = Config, path: str = "") -> list[tuple[str, str, str, str]]:
    """Every key as (path, type, default, description), in file order; docs/config.md is checked against it."""
    rows: list[tuple[str, str, str, str]] = []
    for name, field in _public_fields(cls).items():
        key = _join(path, name)
        inner, _ = _unwrap(field.type)
        if attrs.has(inner):
            rows.append((key, "section", "", field.metadata.get("doc", "")))
            rows.extend(reference(inner, key))
            continue
        rows.append((key, _type_name(inner, field.metadata), _default_text(field), field.metadata.get("doc", "")))
    return rows


BEGIN_MARK = ("<!-- BEGIN GENERATED KEYS: edit cli/config.py, then run "
              "`python -m schemasync_backup.cli.main --update-docs` -->")
END_MARK = "<!-- END GENERATED KEYS -->"


def reference_markdown() -> str:
    """The key table of docs/config.md."""
    lines = [BEGIN_MARK, "", "| key | type | default | meaning |", "|---|---|---|---|"]
    for key, kind, default, doc in reference():
        if kind == "section":
            lines.append(f"| **`{key}`** | section | | {doc} |")
        else:
            shown = f"`{default}`" if default else ""
            escaped = doc.replace("|", "\\|")
            lines.append(f"| `{key}` | {kind} | {shown} | {escaped} |")
    lines += ["", END_MARK]
    return "\n".join(lines)


def _type_name(annotation: Any, meta: Mapping[str, Any]) -> str:
    if meta.get("choices"):
        joined = " \\| ".join(meta["choices"])
        return f"list of {joined}" if typing.get_origin(annotation) is tuple else joined
    if meta.get("kind"):
        return "mapping" if meta["kind"] in ("retention", "options") else str(meta["kind"]).replace("_", " ")
    origin = typing.get_origin(annotation)
    if origin is tuple:
        return "list of strings"
    if origin is dict:
        return "mapping"
    return {bool: "bool", int: "int", float: "number", str: "string"}.get(annotation, str(annotation))


def _default_text(field: attrs.Attribute[Any]) -> str:
    default: Any = field.default
    factory = getattr(default, "factory", None)
    if callable(factory):
        default = factory()
    if default is None or default in ("", (), {}):
        return ""
    if isinstance(default, bool):
        return _BOOL_WORDS[0] if default else _BOOL_WORDS[1]
    if field.metadata.get("kind") == "mode":
        return f"0{default:o}"
    if field.metadata.get("kind") == "duration":
        return durations.format_duration(float(default))
    if isinstance(default, tuple):
        return ", ".join(default)
    return str(default)
