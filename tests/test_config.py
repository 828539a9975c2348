"""The CLI's configuration, logging, notifications and terminal helpers, without a server."""

from __future__ import annotations

import http.server
import io
import json
import logging
import os
import re
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import attrs
import pytest

from schemasync_backup.capture.connection import ConnectionSpec
from schemasync_backup.cli import config as cfg
from schemasync_backup.cli import logsetup, notify
from schemasync_backup.cli.config import ConfigError, parse_config, redacted
from schemasync_backup.cli.console import ConfirmationRefused, Console, human_size, table
from schemasync_backup.plugins.crypto import EncryptionKey
from schemasync_backup.plugins.manager import default_registry

DOCS = Path(__file__).resolve().parents[1] / "docs"
ENV = {"DB_PASSWORD": "p@ss/w:rd#1", "AWS_ACCESS_KEY_ID": "AKIAEXAMPLEKEY", "AWS_SECRET_ACCESS_KEY": "s3cr3t-k3y-value",
       "SLACK_WEBHOOK_URL": "https://hooks.example.com/services/T000/B000/XXXXSECRET"}
#: The timeouts every object storage gets unless the configuration says otherwise.
STORAGE_DEFAULTS = {"connection_timeout": 10.0, "read_timeout": 60.0}


def problems_of(text: str, environ: dict[str, str] | None = None) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        parse_config(text, environ=environ or {})
    return caught.value.problems


def docs_example() -> str:
    text = (DOCS / "config.md").read_text()
    return re.search(r"## A complete example\n\n```yaml\n(.*?)```", text, re.S).group(1)  # type: ignore[union-attr]


# --- loading and validation -------------------------------------------------------------------


def test_the_documented_example_parses_with_every_value_typed() -> None:
    config = parse_config(docs_example(), environ=ENV)
    assert config.database.password == ENV["DB_PASSWORD"] and config.database.port == 3306
    storage = config.backup.storage
    assert storage.provider == "s3" and storage.s3.secret_key == ENV["AWS_SECRET_ACCESS_KEY"]
    assert config.backup.compression.threshold == 1024 and config.backup.compression.codec == "zstd"
    assert config.backup.validation.validation_timeout == 300.0
    assert config.backup.retention == {"max_backups": 50, "max_age": "2160h", "keep_daily": 30}
    assert config.backup.notifications.events[0] == "backup.failed"
    url, options = cfg.storage_location(storage)
    assert url == "s3://prod-mysql-backups/schema-sync"
    assert options == {"key": ENV["AWS_ACCESS_KEY_ID"], "secret": ENV["AWS_SECRET_ACCESS_KEY"],
                       "client_kwargs": {"region_name": "eu-west-1"}, **STORAGE_DEFAULTS, "retry_attempts": 3}


def test_an_empty_file_gives_the_defaults() -> None:
    config = parse_config("", environ={})
    assert config.backup.storage.provider == "local" and config.backup.compression.codec == "lz4"
    assert config.backup.encryption.enabled is False and config.database.database_name() is None


def test_env_expansion_defaults_escapes_and_typed_values() -> None:
    config = parse_config(
        "database:\n  port: ${DB_PORT}\n  host: ${DB_HOST:-fallback}\n  username: ${EMPTY:-used}\n"
        "  password: a$$b\nbackup:\n  compression:\n    enabled: ${ZIP}\n",
        environ={"DB_PORT": "3307", "EMPTY": "", "ZIP": "off"})
    assert config.database.port == 3307 and config.database.host == "fallback"
    assert config.database.username == "used" and config.database.password == "a$b"
    assert config.backup.compression.codec == "none"


def test_a_missing_variable_names_the_key_path_and_the_variable() -> None:
    [problem] = problems_of("backup:\n  storage:\n    provider: s3\n    s3:\n      bucket: b\n"
                            "      access_key: ${KEY_ID}\n      secret_key: x\n")
    assert problem.startswith("backup.storage.s3.access_key: environment variable KEY_ID is not set")


@pytest.mark.parametrize(("text", "expected"), [
    ("database:\n  hots: x\n", "database.hots: unknown key (did you mean 'host'?); allowed in database: dsn, host"),
    ("backup:\n  storage:\n    s3:\n      bukcet: x\n",
     "backup.storage.s3.bukcet: unknown key (did you mean 'bucket'?); allowed in backup.storage.s3: bucket, region"),
    ("extra: 1\n", "extra: unknown key; allowed in the top level: database, backup"),
    ("database:\n  port: 70000\n", "database.port: 70000 is out of range; allowed: from 1 to 65535"),
    ("database:\n  port: many\n", "database.port: expected a whole number, got str 'many'"),
    ("backup:\n  compression:\n    algorithm: bzip2\n",
     "backup.compression.algorithm: unknown compression codec 'bzip2': available: gzip, lz4, none, xor-zlib, zstd; "
     "install a plugin that provides it"),
    ("backup:\n  compression:\n    level: 30\n",
     "backup.compression.level: 30 is out of range for lz4; allowed: from 0 to 16"),
    ("backup:\n  compression:\n    threshold: lots\n", "backup.compression.threshold: expected a size in bytes"),
    ("backup:\n  validation:\n    validation_timeout: soon\n",
     "backup.validation.validation_timeout: expected a duration like \"30s\""),
    ("backup:\n  validation:\n    checksum_algorithm: md5\n",
     "backup.validation.checksum_algorithm: 'md5' is not allowed; allowed: sha256"),
    ("backup:\n  storage:\n    local:\n      permissions: rwx\n",
     "backup.storage.local.permissions: expected an octal mode like \"0700\""),
    ("backup:\n  encryption:\n    enabled: maybe\n", "backup.encryption.enabled: expected true or false"),
    ("backup:\n  encryption:\n    enabled: true\n    key_source: file\n",
     "backup.encryption.key_file: required when key_source is file"),
    ("backup:\n  storage:\n    provider: gcs\n",
     "backup.storage.gcs.bucket: required when backup.storage.provider is gcs"),
    ("backup:\n  notifications:\n    events: [backup.faild]\n",
     "backup.notifications.events: 'backup.faild' is not allowed (did you mean 'backup.failed'?); allowed: "),
    ("backup:\n  notifications:\n    enabled: true\n    webhook_url: ftp://x\n",
     "backup.notifications.webhook_url: '***' is not an http:// or https:// URL"),
    ("database:\n  dsn: mysql://u:p@h/db\n  host: other\n",
     "database.dsn: cannot be combined with database.host"),
    ("database:\n  dsn: postgres://u@h/db\n", "database.dsn: invalid database DSN: scheme 'postgres'"),
    ("backup:\n  storage: [local]\n", "backup.storage: expected a mapping with keys provider, local, s3, azure, gcs"),
    ("backup:\n  retention:\n    keep_forever: 3\n", "backup.retention"),
    ("database: [1, 2\n", "not valid YAML: line 2, column 1: expected ',' or ']'"),
])
def test_bad_input_names_the_key_path_and_what_is_allowed(text: str, expected: str) -> None:
    problems = problems_of(text)
    assert any(problem.startswith(expected) for problem in problems), problems


def test_every_problem_is_collected_and_the_message_counts_them() -> None:
    with pytest.raises(ConfigError) as caught:
        parse_config("database:\n  hots: x\n  port: 0\nbackup:\n  storage:\n    provider: s4\n", source="c.yaml",
                     environ={})
    assert len(caught.value.problems) == 3
    assert str(caught.value).startswith("invalid configuration in c.yaml: database.hots: unknown key")
    assert str(caught.value).endswith("(and 2 more problems; `backup validate-config` lists all)")


def test_config_file_discovery(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ConfigError, match=r"\./config\.yaml does not exist; pass --config PATH or set"):
        cfg.find_config_path(None, environ={})
    (tmp_path / "config.yaml").write_text("database: {database: a}\n")
    (tmp_path / "other.yaml").write_text("database: {database: b}\n")
    assert cfg.find_config_path(None, environ={}) == Path("config.yaml")
    assert cfg.find_config_path(None, environ={cfg.CONFIG_ENV_VAR: "other.yaml"}) == Path("other.yaml")
    assert cfg.find_config_path("config.yaml", environ={cfg.CONFIG_ENV_VAR: "other.yaml"}) == Path("config.yaml")
    with pytest.raises(ConfigError, match=r"missing\.yaml \(from \$MYSQL_SCHEMA_SYNC_CONFIG\) does not exist"):
        cfg.find_config_path(None, environ={cfg.CONFIG_ENV_VAR: "missing.yaml"})
    assert cfg.load_config("other.yaml").database.database == "b"


# --- turning configuration into library arguments --------------------------------------------------


def test_the_dsn_built_from_keys_round_trips_awkward_passwords() -> None:
    config = parse_config("database:\n  host: db.example\n  port: 3307\n  username: us@er\n  password: ${DB_PASSWORD}\n"
                          "  database: my db\n  ssl_ca: /etc/ca.pem\n", environ=ENV)
    spec = ConnectionSpec.parse(config.database.to_dsn())
    assert (spec.host, spec.port, spec.user, spec.password, spec.database) == (
        "db.example", 3307, "us@er", ENV["DB_PASSWORD"], "my db")
    assert spec.ssl == {"ssl_ca": "/etc/ca.pem"}
    assert ConnectionSpec.parse(config.database.to_dsn("other")).database == "other"
    assert ENV["DB_PASSWORD"] not in config.database.describe()
    from_dsn = parse_config("database:\n  dsn: mysql://u:pw@h:3306/shop?connect_timeout=3\n", environ={})
    assert from_dsn.database.database_name() == "shop"
    assert ConnectionSpec.parse(from_dsn.database.to_dsn("x")).database == "x"


def test_storage_locations_for_every_provider() -> None:
    azure = parse_config("backup:\n  storage:\n    provider: azure\n    azure:\n      account_name: acct\n"
                         "      account_key: k3y\n      container_name: c\n      prefix: /p/\n"
                         "      endpoint: http://127.0.0.1:10000/acct\n", environ={})
    url, options = cfg.storage_location(azure.backup.storage)
    assert url == "az://c/p" and options["connection_string"] == (
        "DefaultEndpointsProtocol=http;AccountName=acct;AccountKey=k3y;BlobEndpoint=http://127.0.0.1:10000/acct;")
    gcs = parse_config("backup:\n  storage:\n    provider: gcs\n    gcs:\n      bucket: b\n      project_id: p\n"
                       "      endpoint: http://127.0.0.1:9000\n", environ={})
    assert cfg.storage_location(gcs.backup.storage) == (
        "gs://b", {"project": "p", "endpoint_url": "http://127.0.0.1:9000", "token": "anon", **STORAGE_DEFAULTS})
    local = parse_config("backup:\n  storage:\n    local:\n      base_path: /srv/b\n      permissions: '0750'\n",
                         environ={})
    assert cfg.storage_location(local.backup.storage) == ("/srv/b", {})
    assert local.backup.storage.local.permissions == 0o750


@pytest.mark.parametrize(("url", "keys"), [
    ("/srv/new", {"backup.storage.provider": "local", "backup.storage.local.base_path": "/srv/new"}),
    ("s3://b/some/prefix/", {"backup.storage.provider": "s3", "backup.storage.s3.bucket": "b",
                             "backup.storage.s3.prefix": "some/prefix"}),
    ("az://c", {"backup.storage.provider": "azure", "backup.storage.azure.container_name": "c",
                "backup.storage.azure.prefix": ""}),
    ("gs://b/p", {"backup.storage.provider": "gcs", "backup.storage.gcs.bucket": "b",
                  "backup.storage.gcs.prefix": "p"}),
    ("memory://x/y", {"backup.storage.provider": "memory", "backup.storage.url": "memory://x/y"}),
])
def test_storage_keys_point_a_configuration_at_a_url(url: str, keys: dict[str, str]) -> None:
    assert cfg.storage_keys(url) == keys
    if keys["backup.storage.provider"] != "local":  # and back: the same URL
        document: dict[str, Any] = {}
        for path, value in {**keys, "backup.storage.azure.account_name": "acct"}.items():
            *sections, name = path.split(".")
            target = document
            for section in sections:
                target = target.setdefault(section, {})
            target[name] = value
        assert cfg.storage_location(cfg.from_mapping(document, environ={}).backup.storage)[0] == url.rstrip("/")


def test_keys_from_env_file_and_direct_with_older_keys_after_them(tmp_path: Path) -> None:
    new, old = EncryptionKey.generate(), EncryptionKey.generate()
    (tmp_path / "old.key").write_bytes(old.material)
    config = parse_config(f"backup:\n  encryption:\n    enabled: true\n    key_source: direct\n    key: ${{NEW}}\n"
                          f"    previous_key_files: [{tmp_path / 'old.key'}]\n", environ={"NEW": new.material.hex()})
    assert [key.key_id for key in cfg.encryption_keys(config.backup.encryption)] == [new.key_id, old.key_id]
    assert new.material.hex() in config.secrets()


def test_open_store_applies_compression_encryption_and_permissions(tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    key = EncryptionKey.generate()
    monkeypatch.setenv("TEST_BACKUP_KEY", key.material.hex())
    config = parse_config(f"backup:\n  storage:\n    local:\n      base_path: {tmp_path / 'store'}\n"
                          "      permissions: '0750'\n  compression:\n    algorithm: gzip\n    level: 9\n"
                          "  encryption:\n    enabled: true\n    key_env_var: TEST_BACKUP_KEY\n", environ={})
    store = cfg.open_store(config)
    assert store.encoding.codec == "gzip" and store.encoding.level == 9
    assert store.encoding.key is not None and store.encoding.key.key_id == key.key_id
    assert (store.dir_mode, store.file_mode) == (0o750, 0o640)
    assert not (tmp_path / "store").exists()  # opening writes nothing: a read-only store opens too
    store.put_document("probe/first.json", b"{}")
    assert (tmp_path / "store").stat().st_mode & 0o777 == 0o750
    assert cfg.open_store(config, keys=False).encoding.key is None


# --- secrets ---------------------------------------------------------------------------------------


def test_redacted_config_and_scrubbed_text_hold_no_secret() -> None:
    config = parse_config(docs_example() + "\n", environ=ENV)
    document = json.dumps(redacted(config))
    for secret in ENV.values():
        assert secret not in document
    assert redacted(config)["database"]["password"] == "***"
    assert redacted(config)["backup"]["storage"]["s3"]["secret_key"] == "***"
    text = f"failed with mysql://backup:{ENV['DB_PASSWORD']}@h/ and {ENV['AWS_SECRET_ACCESS_KEY']}"
    assert config.scrub(text) == "failed with mysql://backup:***@h/ and ***"
    dsn = parse_config("database:\n  dsn: mysql://u:hunter22@h/db\n", environ={})
    assert redacted(dsn)["database"]["dsn"] == "mysql://u:***@h/db" and "hunter22" in dsn.secrets()


# --- docs --------------------------------------------------------------------------------------------


def test_docs_config_md_lists_every_key_as_the_schema_defines_it() -> None:
    from schemasync_backup.cli.reference import replace_generated

    document = (DOCS / "config.md").read_text()
    expected = replace_generated(document, cfg.BEGIN_MARK, cfg.END_MARK, cfg.reference_markdown())
    assert document == expected, "docs/config.md is stale: run `python -m schemasync_backup.cli.main --update-docs`"
    for key, *_ in cfg.reference():
        assert f"`{key}`" in document


# --- logging -------------------------------------------------------------------------------------------


def test_log_level_precedence() -> None:
    assert logsetup.resolve_level(True, "error", {}) == logging.DEBUG
    assert logsetup.resolve_level(False, "error", {logsetup.LEVEL_ENV_VAR: "WARNING"}) == logging.WARNING
    assert logsetup.resolve_level(False, "error", {}) == logging.ERROR
    assert logsetup.debug_requested(False, {logsetup.DEBUG_ENV_VAR: "true"})
    assert logsetup.debug_requested(False, {logsetup.LEVEL_ENV_VAR: "debug"})
    assert not logsetup.debug_requested(False, {logsetup.DEBUG_ENV_VAR: "0"})
    with pytest.raises(logsetup.LogSettingsError, match="'loud' is not a log level; allowed: debug, info"):
        logsetup.resolve_level(False, "info", {logsetup.LEVEL_ENV_VAR: "loud"})


def test_the_log_file_falls_back_to_the_state_directory(tmp_path: Path) -> None:
    blocked = tmp_path / "file-not-dir"
    blocked.write_text("")
    environ = {"XDG_STATE_HOME": str(tmp_path / "state")}
    candidates = logsetup.log_file_candidates(None, environ, system=blocked / "backup.log")
    assert logsetup.choose_log_file(candidates) == tmp_path / "state" / "mysql-schema-sync" / "backup.log"
    assert logsetup.log_file_candidates("/x/y.log", environ) == [Path("/x/y.log")]
    assert logsetup.log_file_candidates("/x/y.log", {logsetup.FILE_ENV_VAR: "/z.log"}) == [Path("/z.log")]


def test_operation_lines_carry_fields_duration_and_failures_scrubbed(tmp_path: Path) -> None:
    log = tmp_path / "backup.log"
    setup = logsetup.configure(level=logging.INFO, debug=False, file=log,
                               scrub=lambda text: text.replace("hunter22", "***"), stderr=io.StringIO())
    try:
        with logsetup.operation("backup.create", {"database": "shop", "storage": "s3://b/p"}) as op:
            op.update(backup_id="backup-1", raw_size=10, stored_size=5, description="two words")
        with pytest.raises(RuntimeError), logsetup.operation("backup.create", {"database": "shop"}):
            raise RuntimeError("password hunter22 refused")
        logging.getLogger("sqlglot").info("not interesting")
        logging.getLogger("sqlglot").warning("interesting")
    finally:
        setup.close()
    first, second, third = log.read_text().splitlines()
    assert re.match(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z INFO backup\.create ok ", first)
    for field in ("database=shop", "storage=s3://b/p", "backup_id=backup-1", "raw_size=10", "stored_size=5",
                  'description="two words"'):
        assert field in first
    assert re.search(r"duration=\d+\.\d{3}s", first)
    assert " ERROR backup.create failed: password *** refused " in second and "hunter22" not in second
    assert "error_type=RuntimeError" in second
    assert third.endswith("WARNING interesting")


# --- notifications --------------------------------------------------------------------------------------


@pytest.fixture
def webhook() -> Iterator[tuple[str, list[dict[str, Any]]]]:
    received: list[dict[str, Any]] = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            received.append({"body": json.loads(body), "auth": self.headers.get("Authorization"), "path": self.path})
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    server = http.server.HTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}/hook/SECRETPATH", received
    server.shutdown()
    server.server_close()


def test_webhook_notifier_posts_chosen_events_scrubbed(webhook: tuple[str, list[dict[str, Any]]]) -> None:
    url, received = webhook
    config = parse_config("backup:\n  notifications:\n    enabled: true\n    webhook_url: ${HOOK}\n"
                          "    events: [backup.failed]\n    headers:\n      Authorization: Bearer ${TOKEN}\n",
                          environ={"HOOK": url, "TOKEN": "tok-123456"})
    registry = default_registry()
    assert notify.install(registry, config.backup.notifications, config.scrub)
    registry.notify("backup.created", {"id": "backup-1"})
    registry.notify("backup.failed", {"backup_id": "backup-2", "error": "bad tok-123456 thing"})
    assert len(received) == 1
    body = received[0]["body"]
    assert body["event"] == "backup.failed" and body["payload"]["backup_id"] == "backup-2"
    assert "bad *** thing" in body["text"] and "tok-123456" not in json.dumps(body)
    assert received[0]["auth"] == "Bearer tok-123456" and unquote(received[0]["path"]) == "/hook/SECRETPATH"


def test_an_undeliverable_notification_is_a_warning_not_a_failure(caplog: pytest.LogCaptureFixture) -> None:
    notifier = notify.WebhookNotifier("http://127.0.0.1:9/unreachable", ("backup.failed",), timeout=2)
    with caplog.at_level(logging.WARNING, logger=logsetup.LOGGER_NAME):
        notifier.schemasync_notify("backup.failed", {"error": "x"})
    assert "notification backup.failed not delivered" in caplog.text


# --- the terminal ------------------------------------------------------------------------------------


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_no_progress_and_no_prompt_without_a_terminal() -> None:
    out, err = io.StringIO(), io.StringIO()
    console = Console(out, err, io.StringIO("y\n"))
    assert not console.interactive
    with console.progress(3, "Validating") as bar:
        bar.advance()
    with console.activity("Working"):
        pass
    assert out.getvalue() == err.getvalue() == ""
    console.confirm("Delete?", force=True, action="delete it")
    with pytest.raises(ConfirmationRefused, match="refusing to delete it without confirmation: stdin is not a"):
        console.confirm("Delete?", force=False, action="delete it")


def test_progress_bar_drawing_and_tables(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TERM", "xterm")
    monkeypatch.setenv("NO_COLOR", "1")
    err = _Terminal()
    console = Console(_Terminal(), err, io.StringIO())
    with console.progress(4, "Checking") as bar:
        bar.update(2, "backup-1")
    screen = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", err.getvalue())
    assert re.search(r"Checking ━+ +2/4  50% \d+:\d\d:\d\d", screen), screen  # no colour: the rest is blank
    assert screen.endswith("\n") and "\x1b[3" not in err.getvalue()  # NO_COLOR: no colour codes
    assert table([("a", 1), ("bbb", None)], ("NAME", "N")) == "NAME  N\na     1\nbbb"
    assert table([("[bold]x[/]", ":smile:")], ("A", "B")) == "A           B\n[bold]x[/]  :smile:"  # not markup
assert human_size(512) == "512 B" and human_size(5016) == "4.9 KiB"


# --- the operator guide's layout and keys (issue 15) -------------------------------------------------

_GUIDE_CONFIG = """
database:
  host: localhost
  database: shop
storage:
  provider: s3
  s3:
    bucket: backups
    multipart_threshold: "64MB"
    multipart_chunksize: "16MB"
    max_concurrency: 10
    use_accelerate_endpoint: true
  azure:
    connection_timeout: 300
    read_timeout: 300
    retry_attempts: 5
retention:
  max_backups: 5
  max_age: "72h"
compression:
  enabled: true
  algorithm: "lz4"
  level: 1
  threshold: 10240
backup:
  parallel_operations: true
  max_workers: 4
  buffer_size: "64MB"
  streaming: true
"""


def test_the_guides_top_level_layout_is_the_canonical_one_moved() -> None:
    guide = parse_config(_GUIDE_CONFIG)
    moved = {"database": {"host": "localhost", "database": "shop"}, "backup": {
        "storage": {"provider": "s3", "s3": {"bucket": "backups", "multipart_threshold": "64MB",
                                             "multipart_chunksize": "16MB", "max_concurrency": 10,
                                             "use_accelerate_endpoint": True},
                    "azure": {"connection_timeout": 300, "read_timeout": 300, "retry_attempts": 5}},
        "retention": {"max_backups": 5, "max_age": "72h"},
        "compression": {"enabled": True, "algorithm": "lz4", "level": 1, "threshold": 10240},
        "parallel_operations": True, "max_workers": 4, "buffer_size": "64MB", "streaming": True}}
    assert guide == cfg.from_mapping(moved, source="<string>")
    assert guide.backup.retention == {"max_backups": 5, "max_age": "72h"}
    assert (guide.backup.compression.level, guide.backup.compression.threshold) == (1, 10240)
    assert guide.backup.workers == 4 and guide.backup.buffer_size == 64 << 20


def test_the_guides_s3_and_azure_keys_reach_the_filesystems_options() -> None:
    guide = parse_config(_GUIDE_CONFIG)
    url, options = cfg.storage_location(guide.backup.storage)
    assert url == "s3://backups"
    assert options == {"default_block_size": 16 << 20, "max_concurrency": 10,
                       "config_kwargs": {"s3": {"use_accelerate_endpoint": True}},
                       "connection_timeout": 10.0, "read_timeout": 60.0, "retry_attempts": 3}
    # An S3-compatible store at its own endpoint has no accelerate endpoint (botocore refuses the pair).
    emulated = attrs.evolve(guide.backup.storage, s3=attrs.evolve(guide.backup.storage.s3,
                                                                  endpoint="http://127.0.0.1:9000"))
    assert "config_kwargs" not in cfg.storage_location(emulated)[1]
    azure = attrs.evolve(guide.backup.storage, provider="azure", azure=attrs.evolve(
        guide.backup.storage.azure, account_name="acct", container_name="c", connection_timeout=2.5))
    _, options = cfg.storage_location(azure)
    assert options == {"account_name": "acct", "connection_timeout": 2.5, "read_timeout": 300, "retry_attempts": 5}


@pytest.mark.parametrize(("text", "said"), [
    ("parallel_operations: true\n", "parallel_operations: unknown key; parallel_operations is a key of backup"),
    ("backup:\n  s3: {}\n", "backup.s3: unknown key; s3 is a key of backup.storage"),
    ("storage: {}\nbackup:\n  storage: {}\n", "storage: also given as backup.storage; keep one"),
    ("backup:\n  storage:\n    azure:\n      connection_timeot: 3\n", "(did you mean 'connection_timeout'?)"),
    ("backup:\n  streaming: false\n", "backup.streaming: false is not supported"),
    ("storage:\n  s3:\n    multipart_chunksize: 1MB\n", "backup.storage.s3.multipart_chunksize: '1MB' is out of range"),
])
def test_a_key_in_the_wrong_place_names_where_it_belongs(text: str, said: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_config(text)
    assert said in str(caught.value)


def test_parallel_operations_false_means_one_connection() -> None:
    assert parse_config("backup:\n  max_workers: 4\n  parallel_operations: false\n").backup.workers == 1
    assert parse_config("backup:\n  max_workers: 4\n").backup.workers == 4


def test_a_codec_or_provider_whose_package_is_missing_fails_validation(monkeypatch: pytest.MonkeyPatch) -> None:
    import importlib.util

    found = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *rest: None if name in ("zstandard", "gcsfs") else found(name, *rest))
    with pytest.raises(ConfigError) as caught:
        parse_config("compression:\n  algorithm: zstd\nstorage:\n  provider: gcs\n  gcs:\n    bucket: b\n")
    problems = "\n".join(caught.value.problems)
    assert "backup.compression.algorithm: zstd needs the zstandard package" in problems
    assert "backup.storage.provider: gcs needs the gcsfs package" in problems
    assert "pip install 'schemasync_backup[gcs]'" in problems
    assert parse_config("compression:\n  algorithm: zstd\n  enabled: false\n").backup.compression.codec == "none"


def test_the_guides_multipart_settings_upload_in_parts_on_the_s3_emulator(s3_emulator: Any) -> None:
    import boto3
    from storage_backends import S3_KEY, S3_SECRET

    bucket = f"multipart-{abs(hash(s3_emulator.endpoint)) % 10**8}"
    client = boto3.client("s3", endpoint_url=s3_emulator.endpoint, aws_access_key_id=S3_KEY,
                          aws_secret_access_key=S3_SECRET, region_name="us-east-1")
    client.create_bucket(Bucket=bucket)
    settings = (f"storage:\n  provider: s3\n  s3:\n    bucket: {bucket}\n    endpoint: {s3_emulator.endpoint}\n"
                f"    access_key: {S3_KEY}\n    secret_key: {S3_SECRET}\n")

    def parts(extra: str) -> int:
        store = cfg.open_store(parse_config(settings + extra + "compression:\n  enabled: false\n"))
        record = store.store_object(os.urandom(12 << 20))
        etag = client.head_object(Bucket=bucket, Key=store.files.object_path(record).removeprefix(f"{bucket}/"))
        # S3 (and moto) give a multipart object the ETag "<md5 of the parts' md5s>-<number of parts>".
        count = etag["ETag"].strip('"').partition("-")[2]
        return int(count) if count else 1

    assert parts("    multipart_chunksize: 5MB\n    max_concurrency: 2\n") >= 2  # parts of a block or a frame
    assert parts("    multipart_threshold: 16MB\n") == 1  # one block holds it: one request
