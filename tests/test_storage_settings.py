"""The storage settings of the configuration reach each provider's library; failures get their own words.

Timeouts and retries (S3, Azure, GCS), GCS with an endpoint from the config alone (no environment
variables), a missing S3 bucket and S3 access denied, and the storage operations' log lines.
"""

from __future__ import annotations

import contextlib
import http.server
import itertools
import json
import logging
import os
import re
import socket
import subprocess
import sys
import threading
import time
import urllib.parse
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar

import pytest
import yaml
from storage_backends import (
    AZURE_KEY,
    GCS_PROJECT,
    S3_KEY,
    S3_SECRET,
    Emulator,
    MotoEmulator,
    StorageLocation,
    unavailable,
)

from schemasync_backup import StorageNotFoundError, StoragePermissionError, Validator
from schemasync_backup.cli import config as cfg
from schemasync_backup.formats.manifest import Status
from schemasync_backup.store.fs import shown
from schemasync_backup.store.store import BackupStore
from schemasync_backup.testing.samples import load_sample
from schemasync_backup.testing.sandbox import ThrowawayServer

SCRIPT = Path(sys.executable).with_name("mysql-schema-sync")
#: What the test harness sets for gcsfs (tests/storage_backends.py); the CLI must not need any of it.
HARNESS_VARIABLES = ("GCSFS_EXPERIMENTAL_ZB_HNS_SUPPORT", "NO_GCE_CHECK", "STORAGE_EMULATOR_HOST")
AZURITE_ACCOUNT = "devstoreaccount1"
_names = itertools.count()


def clean_env(tmp_path: Path) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items()
           if key not in HARNESS_VARIABLES and not key.startswith(("MYSQL_SCHEMA_SYNC_", "AWS_", "AZURE_"))}
    env["MYSQL_SCHEMA_SYNC_LOG_FILE"] = str(tmp_path / "backup.log")
    return env


def write(tmp_path: Path, storage: dict[str, Any], database: dict[str, Any] | None = None) -> Path:
    path = tmp_path / "config.yaml"
    document = {"database": database or {"host": "127.0.0.1", "database": "unused"}, "storage": storage}
    path.write_text(yaml.safe_dump(document, sort_keys=False))
    return path


def run(config: Path, *args: str, env: dict[str, str], timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """The installed script; a hang fails the test (TimeoutExpired) instead of stalling the run."""
    return subprocess.run([str(SCRIPT), *args, "--config", str(config)], capture_output=True, text=True,
                          stdin=subprocess.DEVNULL, timeout=timeout, check=False, env=env)


# --- what each library is given -------------------------------------------------------------------------


def test_timeouts_and_retries_reach_each_providers_client() -> None:
    s3 = cfg.open_store(cfg.from_mapping({"storage": {"provider": "s3", "s3": {
        "bucket": "b", "endpoint": "http://127.0.0.1:1", "access_key": "k", "secret_key": "s",
        "connection_timeout": "7s", "read_timeout": 9, "retry_attempts": 2}}}, environ={}))
    s3.fs.connect()
    botocore = s3.fs.s3.meta.config
    assert (botocore.connect_timeout, botocore.read_timeout, botocore.retries["total_max_attempts"]) == (7, 9, 3)

    azure = cfg.open_store(cfg.from_mapping({"storage": {"provider": "azure", "azure": {
        "account_name": AZURITE_ACCOUNT, "account_key": AZURE_KEY, "container_name": "c",
        "endpoint": f"http://127.0.0.1:1/{AZURITE_ACCOUNT}", "connection_timeout": 300, "read_timeout": 200,
        "retry_attempts": 5}}}, environ={}))
    client = azure.fs.service_client  # what adlfs itself builds gets none of them (fsspec/adlfs#502)
    retries = [policy for policy in client._pipeline._impl_policies if type(policy).__name__ == "ExponentialRetry"]
    assert [policy.total_retries for policy in retries] == [5]
    transport = client._pipeline._transport.connection_config
    assert (transport.timeout, transport.read_timeout) == (300, 200)

    defaults = cfg.open_store(cfg.from_mapping({"storage": {"provider": "azure", "azure": {
        "account_name": AZURITE_ACCOUNT, "account_key": AZURE_KEY, "container_name": "c"}}}, environ={}))
    transport = defaults.fs.service_client._pipeline._transport.connection_config
    assert (transport.timeout, transport.read_timeout) == (10, 60)

    import gcsfs.core

    gcs = cfg.open_store(cfg.from_mapping({"storage": {"provider": "gcs", "gcs": {
        "bucket": "b", "project_id": "p", "endpoint": "http://127.0.0.1:1", "connection_timeout": 3,
        "read_timeout": 4}}}, environ={}))
    assert type(gcs.fs) is gcsfs.core.GCSFileSystem  # the JSON API alone: no gRPC handshake with an emulator
    timeout = gcs.fs.requests_timeout
    assert (timeout.total, timeout.sock_connect, timeout.sock_read) == (None, 3, 4)


@pytest.mark.parametrize("text", [
    "http://user:pa55word@host:1/path?sig=SAStoken&sv=1",
    "failed: https://acct.blob.core.windows.net/c/x?se=2030&sig=SAStoken (HTTP 403)",
])
def test_urls_in_storage_messages_lose_their_userinfo_and_query(text: str) -> None:
    assert "pa55word" not in shown(text) and "SAStoken" not in shown(text) and "?***" in shown(text)


# --- a storage that accepts connections and never answers ---------------------------------------------------


@contextlib.contextmanager
def silent_server() -> Iterator[int]:
    """A TCP port that accepts every connection and never sends a byte."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(64)
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        listener.settimeout(0.2)
        while not stop.is_set():
            with contextlib.suppress(OSError):
                held.append(listener.accept()[0])

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield int(listener.getsockname()[1])
    finally:
        stop.set()
        thread.join()
        for connection in held:
            connection.close()
        listener.close()


#: Per provider: the storage section for an endpoint, and how long its retries may take at 1 s per try.
SILENT = {
    "s3": (lambda endpoint: {"provider": "s3", "s3": {
        "bucket": "b", "endpoint": endpoint, "access_key": S3_KEY, "secret_key": S3_SECRET,
        "connection_timeout": 1, "read_timeout": 1, "retry_attempts": 0}}, 30),  # s3fs retries 5 times
    "azure": (lambda endpoint: {"provider": "azure", "azure": {
        "account_name": AZURITE_ACCOUNT, "account_key": AZURE_KEY, "container_name": "c",
        "endpoint": f"{endpoint}/{AZURITE_ACCOUNT}", "connection_timeout": 1, "read_timeout": 1,
        "retry_attempts": 0}}, 20),
    "gcs": (lambda endpoint: {"provider": "gcs", "gcs": {
        "bucket": "b", "project_id": "p", "endpoint": endpoint, "connection_timeout": 1,
        "read_timeout": 1}}, 90),  # gcsfs tries 6 times, backing off 1 + 2 + 4 + 8 + 16 s
}


@pytest.mark.parametrize("provider", list(SILENT))
def test_a_storage_that_never_answers_fails_within_its_timeouts(provider: str, tmp_path: Path) -> None:
    section, bound = SILENT[provider]
    with silent_server() as port:
        config = write(tmp_path, section(f"http://127.0.0.1:{port}"))
        began = time.monotonic()
        done = run(config, "backup", "test-connection", env=clean_env(tmp_path), timeout=bound + 60)
        took = time.monotonic() - began
    assert done.returncode == 1, done.stdout + done.stderr
    assert "the storage did not answer in time" in done.stderr, done.stderr
    assert "raise the storage's connection_timeout and read_timeout" in done.stderr
    assert "Traceback" not in done.stderr and took < bound, (took, done.stderr)


# --- GCS with an endpoint: the configuration is enough --------------------------------------------------------


@pytest.fixture
def sample(mariadb: ThrowawayServer) -> str:
    name = f"storage_{os.getpid()}_{next(_names)}"
    load_sample(mariadb.dsn, name)
    return name


@pytest.mark.server
@pytest.mark.parametrize("storage_url", ["gcs"], indirect=True)
def test_gcs_with_an_endpoint_works_from_the_config_alone(storage_url: StorageLocation, mariadb: ThrowawayServer,
                                                           sample: str, tmp_path: Path) -> None:
    bucket, _, prefix = storage_url.url.removeprefix("gs://").partition("/")
    config = write(tmp_path, {"provider": "gcs", "gcs": {
        "bucket": bucket, "prefix": prefix, "endpoint": storage_url.options["endpoint_url"],
        "project_id": storage_url.options["project"]}},
        {"host": "127.0.0.1", "port": mariadb.port, "username": "root", "database": sample})
    env = clean_env(tmp_path)
    assert not set(HARNESS_VARIABLES) & set(env)
    connected = run(config, "backup", "test-connection", env=env, timeout=60)
    assert connected.returncode == 0 and connected.stdout.startswith("OK       storage:"), connected.stderr
    created = run(config, "backup", "create", "--format", "json", env=env, timeout=120)
    assert created.returncode == 0, created.stderr
    backup_id = json.loads(created.stdout)["backup_id"]
    listed = run(config, "backup", "list", "--format", "json", env=env, timeout=60)
    assert listed.returncode == 0 and [entry["id"] for entry in json.loads(listed.stdout)] == [backup_id]


# --- S3: a missing bucket, access denied ---------------------------------------------------------------------


def s3_section(endpoint: str, bucket: str, key: str = S3_KEY, secret: str = S3_SECRET) -> dict[str, Any]:
    return {"provider": "s3", "s3": {"bucket": bucket, "prefix": "backups", "endpoint": endpoint, "access_key": key,
                                     "secret_key": secret, "retry_attempts": 0}}


def gcs_section(emulator: Emulator, bucket: str) -> dict[str, Any]:
    return {"provider": "gcs", "gcs": {"bucket": bucket, "prefix": "backups", "endpoint": emulator.endpoint,
                                       "project_id": GCS_PROJECT}}


@pytest.mark.parametrize("provider", ["s3", "azure", "gcs"])
def test_a_missing_bucket_or_container_is_named(provider: str, request: pytest.FixtureRequest,
                                                tmp_path: Path) -> None:
    if provider == "s3":
        section = s3_section(request.getfixturevalue("s3_emulator").endpoint, "no-such-bucket-here")
        expected = ("storage bucket 'no-such-bucket-here' does not exist on s3:// (s3://no-such-bucket-here/backups):"
                    " create it, or fix backup.storage.s3.bucket")
    elif provider == "gcs":
        # gcsfs says FileNotFoundError for a missing bucket and a missing object alike.
        section = gcs_section(request.getfixturevalue("gcs_emulator"), "no-such-bucket-here")
        expected = ("storage bucket 'no-such-bucket-here' does not exist on gs:// (gs://no-such-bucket-here/backups):"
                    " create it, or fix backup.storage.gcs.bucket")
    else:
        emulator = request.getfixturevalue("azure_emulator")
        section = {"provider": "azure", "azure": {"connection_string": emulator.connection_string,
                                                  "container_name": "no-such-container", "retry_attempts": 0}}
        expected = ("storage container 'no-such-container' does not exist on az:// (az://no-such-container): "
                    "create it, or fix backup.storage.azure.container_name")
    config = write(tmp_path, section)
    store = cfg.open_store(cfg.load_config(config, environ={}))
    with pytest.raises(StorageNotFoundError) as caught:
        store.list()  # not an empty store
    assert caught.value.message == expected
    done = run(config, "backup", "test-connection", env=clean_env(tmp_path), timeout=60)
    assert done.returncode == 1 and expected in done.stderr, done.stderr


def test_an_empty_gcs_bucket_is_an_empty_store_not_a_missing_one(gcs_emulator: Emulator, tmp_path: Path) -> None:
    bucket = f"empty-{uuid.uuid4().hex[:12]}"
    store = cfg.open_store(cfg.load_config(write(tmp_path, gcs_section(gcs_emulator, bucket)), environ={}))
    store.files.fs.mkdir(bucket)
    assert store.list() == []  # its prefix lists as FileNotFoundError too, but the bucket lists


class _DeniedBucketListing(http.server.BaseHTTPRequestHandler):
    """GCS's JSON API where a prefix holds nothing (404) and listing the bucket itself is refused (403):
    credentials that may read objects but not list the bucket's top level."""

    bucket_listings: ClassVar[list[str]] = []

    def do_GET(self) -> None:
        query = urllib.parse.parse_qs(urllib.parse.urlsplit(self.path).query)
        status, message = (404, "Not Found") if query.get("prefix") else (403, "denied")
        if status == 403:
            self.bucket_listings.append(self.path)
        body = json.dumps({"error": {"code": status, "message": message}}).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass


def test_a_denied_gcs_bucket_listing_claims_no_missing_bucket(tmp_path: Path) -> None:
    with http.server.ThreadingHTTPServer(("127.0.0.1", 0), _DeniedBucketListing) as server:
        threading.Thread(target=server.serve_forever, daemon=True).start()
        try:
            section = {"provider": "gcs", "gcs": {"bucket": "b", "prefix": "backups", "project_id": "p",
                                                  "endpoint": f"http://127.0.0.1:{server.server_address[1]}"}}
            store = cfg.open_store(cfg.load_config(write(tmp_path, section), environ={}))
            assert store.list() == []  # what the store said before it looked at buckets: nothing found
        finally:
            server.shutdown()
    assert len(_DeniedBucketListing.bucket_listings) >= 1  # it did ask, and was refused


@pytest.fixture
def s3_with_iam(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Emulator]:
    """A moto server of its own that checks IAM policies (the session's lets every request through)."""
    emulator = MotoEmulator(tmp_path_factory.mktemp("moto-iam"))
    if emulator.executable is None:
        unavailable("moto_server is not installed")
    emulator.start()
    try:
        yield emulator
    finally:
        emulator.stop()


def iam_user(emulator: Emulator, name: str, policy: dict[str, Any]) -> tuple[str, str]:
    import boto3

    iam = boto3.client("iam", endpoint_url=emulator.endpoint, aws_access_key_id=S3_KEY,
                       aws_secret_access_key=S3_SECRET, region_name="us-east-1")
    iam.create_user(UserName=name)
    iam.put_user_policy(UserName=name, PolicyName="store", PolicyDocument=json.dumps(policy))
    created = iam.create_access_key(UserName=name)["AccessKey"]
    return created["AccessKeyId"], created["SecretAccessKey"]


def enforce_iam(emulator: Emulator) -> None:
    import urllib.request

    # Every request from now on needs an IAM user's key and a policy allowing it (text/plain: moto reads the body).
    request = urllib.request.Request(f"{emulator.endpoint}/moto-api/reset-auth", data=b"0", method="POST",
                                     headers={"Content-Type": "text/plain"})
    with urllib.request.urlopen(request, timeout=10):
        pass


@pytest.mark.server
def test_s3_access_denied_is_its_own_error_and_never_damage(s3_with_iam: Emulator, mariadb: ThrowawayServer,
                                                            sample: str, tmp_path: Path) -> None:
    import boto3

    boto3.client("s3", endpoint_url=s3_with_iam.endpoint, aws_access_key_id=S3_KEY, aws_secret_access_key=S3_SECRET,
                 region_name="us-east-1").create_bucket(Bucket="store")
    bucket, everything = "arn:aws:s3:::store", "arn:aws:s3:::store/*"
    nothing_key = iam_user(s3_with_iam, "nobody", {"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Action": "sts:GetCallerIdentity", "Resource": "*"}]})
    owner_key = iam_user(s3_with_iam, "owner", {"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Action": "s3:*", "Resource": [bucket, everything]}]})
    # Reads the manifests, but not the objects: a validation that cannot read must not call the backup damaged.
    reader_key = iam_user(s3_with_iam, "reader", {"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Action": "s3:*", "Resource": [bucket, everything]},
        {"Effect": "Deny", "Action": "s3:GetObject", "Resource": "arn:aws:s3:::store/backups/objects/*"}]})
    enforce_iam(s3_with_iam)

    owner = cfg.open_store(cfg.from_mapping({"storage": s3_section(s3_with_iam.endpoint, "store", *owner_key)},
                                            environ={}))
    info = owner.create(mariadb.dsn, sample)

    config = write(tmp_path, s3_section(s3_with_iam.endpoint, "store", *nothing_key))
    done = run(config, "backup", "test-connection", env=clean_env(tmp_path), timeout=60)
    assert done.returncode == 1, done.stderr
    assert ("access denied to s3://store/backups/manifests: check the credentials (backup.storage.s3.access_key/"
            "secret_key, or the AWS credential chain) and that the bucket and IAM policies allow s3:ListBucket, "
            "s3:GetObject, s3:PutObject and s3:DeleteObject") in done.stderr, done.stderr
    assert nothing_key[1] not in done.stderr + done.stdout

    reader = cfg.open_store(cfg.from_mapping({"storage": s3_section(s3_with_iam.endpoint, "store", *reader_key)},
                                             environ={}))
    with pytest.raises(StoragePermissionError) as caught:
        Validator(reader).validate(info.id)
    assert "access denied to s3://store/backups/objects/" in caught.value.message
    assert owner.get(info.id).status == Status.COMPLETED  # unreadable, not CORRUPTED


# --- storage operations in the log -------------------------------------------------------------------------


_LINE = re.compile(r"^storage (?P<operation>[a-z]+) (?P<path>\S+) duration=\d+\.\d{3}s( bytes=\d+)?( entries=\d+)? ")


@pytest.mark.server
@pytest.mark.parametrize("storage_url", ["file", "memory", "s3", "azure"], indirect=True)
def test_every_storage_operation_is_logged_with_its_duration_and_no_secret(
        storage_url: StorageLocation, mariadb: ThrowawayServer, sample: str, caplog: pytest.LogCaptureFixture) -> None:
    store = BackupStore.open(storage_url.url, storage_options=storage_url.options)
    with caplog.at_level(logging.DEBUG, logger="schemasync_backup.storage"):
        info = store.create(mariadb.dsn, sample)
        store.list()
        Validator(store).validate(info.id)
        store.delete(info.id)
    lines = [record.getMessage() for record in caplog.records if record.name == "schemasync_backup.storage"]
    matched = [_LINE.match(line) for line in lines]
    assert lines and all(matched), [line for line, match in zip(lines, matched, strict=True) if not match]
    operations = {match["operation"] for match in matched if match}
    assert {"write", "list", "read", "delete"} <= operations, operations
    assert any("bytes=" in line for line in lines if line.startswith("storage write"))
    everything = "\n".join(record.getMessage() for record in caplog.records)
    assert S3_SECRET not in everything and AZURE_KEY not in everything
