"""Storage emulators for the tests, and the ``storage_url`` fixture that runs a test on every backend.

Loaded from tests/conftest.py with ``pytest_plugins = ["storage_backends"]``.

``storage_url`` is parametrized over ``file``, ``memory``, ``s3``, ``azure`` and ``gcs`` (those are
the test ids, so ``-k s3`` works) and gives each test a :class:`StorageLocation`: a URL to a fresh,
empty location and the fsspec storage options to reach it::

    def test_something(storage_url):
        fs, root = fsspec.core.url_to_fs(storage_url.url, **storage_url.options)

To run a test on some backends only: ``@pytest.mark.parametrize("storage_url", ["s3", "gcs"], indirect=True)``.

The emulators (moto for S3, Azurite for Azure Blob, gcp-storage-emulator for GCS) are started
lazily, once per session, each on a free 127.0.0.1 port, and stopped at the end of the session.
moto and gcp-storage-emulator come from the venv (the ``test`` extra); Azurite is an npm package
that scripts/bootstrap.sh installs into ``.tools/azurite``. If an emulator cannot be started (or
has died), the tests that need it fail when the environment variable ``CI`` is set (to anything
but ``""``, ``0``, ``false`` or ``no``) and are skipped otherwise, with the reason and the tail of
the emulator's log in the message.

Facts and traps behind the settings here: shared/STORAGE-EMULATORS.md.
"""

from __future__ import annotations

import atexit
import contextlib
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any, NamedTuple, NoReturn

import fsspec
import pytest

# gcsfs decides at import time which class ``gs://`` gets. With the default, every call to the
# emulator first waits on a Storage-Control gRPC request that cannot succeed (30-95 s per call).
# NO_GCE_CHECK keeps google-auth from probing the GCE metadata server, which is not on loopback.
os.environ["GCSFS_EXPERIMENTAL_ZB_HNS_SUPPORT"] = "false"
os.environ["NO_GCE_CHECK"] = "true"
if "gcsfs" in sys.modules:  # imported before this plugin (with whatever the variable was then): pin the plain class
    import gcsfs.core

    for _protocol in ("gs", "gcs"):
        fsspec.register_implementation(_protocol, gcsfs.core.GCSFileSystem, clobber=True)

BACKENDS = ("file", "memory", "s3", "azure", "gcs")

REPO_ROOT = Path(__file__).resolve().parents[1]
AZURITE_PREFIX = REPO_ROOT / ".tools" / "azurite"
START_TIMEOUT = 30.0  # seconds; every emulator is normally up in under 1 s
STOP_TIMEOUT = 5.0

S3_KEY = S3_SECRET = "testing"  # moto accepts any credentials
AZURE_ACCOUNT = "devstoreaccount1"
# Azurite's published development key (not a secret)
AZURE_KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
GCS_PROJECT = "test-project"
GCS_BATCH_SIZE = 4  # the GCS emulator is single-threaded with a listen backlog of 5
# Fail in seconds, not minutes, when a server is gone (the defaults retry for 6-84 s).
S3_CLIENT_CONFIG: dict[str, Any] = {"connect_timeout": 2, "read_timeout": 10, "retries": {"max_attempts": 1}}
ADMIN_TIMEOUT = 10.0

_ANSI_ESCAPE = re.compile(r"\x1b\[[0-9;]*m")
_running: list[subprocess.Popen[bytes]] = []
_started: list[Emulator] = []  # for the summary line


def pytest_configure(config: pytest.Config) -> None:
    # aiohttp warns (ResourceWarning) whenever adlfs or gcsfs upload a block of more than 1 MiB as bytes,
    # which the project's filterwarnings = ["error"] turns into a failed write. The filesystem's event loop
    # runs on fsspec's own thread, so nothing is blocked that matters. Added last, so it takes precedence.
    config.addinivalue_line(
        "filterwarnings", "ignore:Sending a large body directly with raw bytes might lock:ResourceWarning"
    )


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if _started:
        times = ", ".join(f"{emulator.name} {emulator.startup_seconds:.2f} s" for emulator in _started)
        terminalreporter.write_line(f"storage emulators started: {times}")


def in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")


def unavailable(message: str) -> NoReturn:
    """Fail (under CI) or skip (elsewhere) the current test because a backend is not available."""
    if in_ci():
        pytest.fail(f"[CI is set, so this fails instead of skipping] {message}", pytrace=False)
    pytest.skip(message)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def port_open(port: int, timeout: float = 0.2) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=timeout):
            return True
    except OSError:
        return False


class EmulatorError(RuntimeError):
    """An emulator could not be started."""


class Emulator:
    """One emulator process on 127.0.0.1: ``start()`` waits for its port, ``stop()`` ends it."""

    def __init__(self, name: str, executable: Path | None, hint: str, workdir: Path) -> None:
        self.name = name
        self.executable = executable
        self.hint = hint  # how to install it, for the error message
        self.workdir = workdir
        self.log_path = workdir / f"{name}.log"
        self.port = 0
        self.process: subprocess.Popen[bytes] | None = None
        self.startup_seconds = 0.0
        self._began = 0.0

    def argv(self, port: int) -> list[str]:
        raise NotImplementedError

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None and port_open(self.port)

    def log_tail(self, lines: int = 15) -> str:
        try:
            text = _ANSI_ESCAPE.sub("", self.log_path.read_text(errors="replace")).strip()
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    def describe_failure(self, what: str) -> str:
        tail = self.log_tail()
        return f"{self.name} emulator {what}" + (f"; last lines of {self.log_path}:\n{tail}" if tail else "")

    def launch(self) -> None:
        """Start the process on a free port without waiting for it (so that several start at once)."""
        if self.executable is None or not self.executable.exists():
            raise EmulatorError(f"{self.name} emulator not found ({self.executable or 'no path'}): {self.hint}")
        if not self._began:
            self._began = time.monotonic()
        self.port = free_port()
        self.log_path.write_bytes(b"")
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                self.argv(self.port), stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, cwd=self.workdir
            )
        _running.append(self.process)

    def wait_ready(self) -> None:
        """Wait until the launched process listens on its port; raise EmulatorError if it does not."""
        for attempt in range(3):  # another process may take the free port between the check and the bind
            process = self.process
            assert process is not None, "launch() first"
            deadline = time.monotonic() + START_TIMEOUT
            while process.poll() is None:
                if port_open(self.port):
                    self.startup_seconds = time.monotonic() - self._began
                    _started.append(self)
                    return
                if time.monotonic() > deadline:
                    self.stop()
                    raise EmulatorError(self.describe_failure(f"opened no port {self.port} in {START_TIMEOUT:.0f} s"))
                time.sleep(0.02)
            self.stop()
            if attempt == 2 or "in use" not in self.log_tail().lower():
                raise EmulatorError(self.describe_failure(f"exited with status {process.returncode} at startup"))
            self.launch()

    def start(self) -> None:
        self.launch()
        self.wait_ready()

    def stop(self) -> None:
        process, self.process = self.process, None
        if process is None:
            return
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(STOP_TIMEOUT)
        if process in _running:
            _running.remove(process)


def _venv_script(name: str) -> Path | None:
    beside = Path(sys.executable).parent / name
    if beside.exists():
        return beside
    found = shutil.which(name)
    return Path(found) if found else None


class MotoEmulator(Emulator):
    def __init__(self, workdir: Path) -> None:
        super().__init__("s3", _venv_script("moto_server"), "pip install -e '.[test]' (moto[server])", workdir)

    def argv(self, port: int) -> list[str]:
        return [str(self.executable), "-H", "127.0.0.1", "-p", str(port)]


class AzuriteEmulator(Emulator):
    def __init__(self, workdir: Path) -> None:
        executable = AZURITE_PREFIX / "node_modules" / ".bin" / "azurite-blob"
        if not executable.exists() and shutil.which("azurite-blob"):
            executable = Path(str(shutil.which("azurite-blob")))
        super().__init__("azure", executable, "run `bash scripts/bootstrap.sh` (npm install into .tools/azurite)",
                         workdir)

    def argv(self, port: int) -> list[str]:
        # --skipApiVersionCheck: azure-storage-blob sends an x-ms-version newer than Azurite knows.
        # --disableTelemetry: otherwise Azurite sends telemetry off the machine.
        location = self.workdir / f"azurite-data-{port}"
        return [str(self.executable), "--blobHost", "127.0.0.1", "--blobPort", str(port), "--location", str(location),
                "--silent", "--disableTelemetry", "--skipApiVersionCheck"]

    @property
    def connection_string(self) -> str:
        return (f"DefaultEndpointsProtocol=http;AccountName={AZURE_ACCOUNT};AccountKey={AZURE_KEY};"
                f"BlobEndpoint={self.endpoint}/{AZURE_ACCOUNT};")


class GcsEmulator(Emulator):
    def __init__(self, workdir: Path) -> None:
        super().__init__("gcs", _venv_script("gcp-storage-emulator"), "pip install -e '.[test]' (gcp-storage-emulator)",
                         workdir)

    def argv(self, port: int) -> list[str]:
        return [str(self.executable), "start", "--host", "127.0.0.1", "--port", str(port), "--in-memory", "-q"]


@atexit.register
def _kill_leftovers() -> None:  # in case the session teardown never ran
    for process in list(_running):
        if process.poll() is None:
            process.kill()


EMULATORS: dict[str, type[Emulator]] = {"s3": MotoEmulator, "azure": AzuriteEmulator, "gcs": GcsEmulator}


class EmulatorPool:
    """The session's emulators: each is launched at most once and stopped at the end of the session."""

    def __init__(self, tmp_path_factory: pytest.TempPathFactory) -> None:
        self.tmp_path_factory = tmp_path_factory
        self.emulators: dict[str, Emulator] = {}
        self.errors: dict[str, str] = {}
        self.ready: set[str] = set()

    def launch(self, backend: str) -> None:
        if backend in self.emulators or backend in self.errors:
            return
        emulator = EMULATORS[backend](self.tmp_path_factory.mktemp(f"emulator-{backend}"))
        self.emulators[backend] = emulator
        try:
            emulator.launch()
        except EmulatorError as exc:
            self.errors[backend] = str(exc)

    def get(self, backend: str) -> Emulator | str:
        """The running emulator for ``backend``, or why it could not be started."""
        self.launch(backend)
        for name, emulator in self.emulators.items():  # all that were launched, so that their startup times are true
            if name not in self.ready and name not in self.errors:
                try:
                    emulator.wait_ready()
                    self.ready.add(name)
                except EmulatorError as exc:
                    self.errors[name] = str(exc)
        return self.errors.get(backend) or self.emulators[backend]

    def stop(self) -> None:
        for emulator in self.emulators.values():
            emulator.stop()


@pytest.fixture(scope="session")
def storage_emulators(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[EmulatorPool]:
    """The session's emulators. On first use it launches, all at once, every one that a selected test's
    ``storage_url`` needs (a test that asks for ``s3_emulator`` & co. alone gets its emulator then)."""
    pool = EmulatorPool(tmp_path_factory)
    needed = set()
    for item in request.session.items:
        callspec = getattr(item, "callspec", None)
        if callspec is not None:
            needed.add(callspec.params.get("storage_url"))
    try:
        for backend in EMULATORS:
            if backend in needed:
                pool.launch(backend)
        yield pool
    finally:
        pool.stop()


def running_emulator(request: pytest.FixtureRequest, backend: str) -> Emulator:
    """The session's emulator for ``backend``, or fail/skip the test if it is not running."""
    pool: EmulatorPool = request.getfixturevalue("storage_emulators")
    emulator = pool.get(backend)
    if isinstance(emulator, str):
        unavailable(emulator)
    if not emulator.alive():
        unavailable(emulator.describe_failure(f"is no longer running on port {emulator.port}"))
    return emulator


@pytest.fixture
def s3_emulator(request: pytest.FixtureRequest) -> Emulator:
    """The session's moto server (fails or skips the test if it is not running)."""
    return running_emulator(request, "s3")


@pytest.fixture
def azure_emulator(request: pytest.FixtureRequest) -> Emulator:
    """The session's Azurite (fails or skips the test if it is not running)."""
    return running_emulator(request, "azure")


@pytest.fixture
def gcs_emulator(request: pytest.FixtureRequest) -> Emulator:
    """The session's gcp-storage-emulator (fails or skips the test if it is not running)."""
    return running_emulator(request, "gcs")


class StorageLocation(NamedTuple):
    """A fresh, empty place to store backups: ``fsspec.core.url_to_fs(url, **options)`` reaches it."""

    url: str
    options: dict[str, Any]

    @property
    def backend(self) -> str:
        scheme = self.url.split("://", 1)[0]
        return {"az": "azure", "gs": "gcs"}.get(scheme, scheme)


def _unique(prefix: str) -> str:
    # 3-63 lowercase letters, digits and hyphens: valid for S3, Azure and GCS bucket names
    return f"{prefix}-{uuid.uuid4().hex[:20]}"


# --- S3 (moto) -------------------------------------------------------------------------------------------------


def _s3_client(emulator: Emulator) -> Any:
    # Imported here, so that a run without S3 tests does not pay for importing them. boto3 comes with moto.
    import boto3
    from botocore.config import Config

    # No region_name="us-east-1" in fsspec's client_kwargs (s3fs would send a LocationConstraint moto rejects);
    # boto3's create_bucket below sends none for us-east-1.
    return boto3.client("s3", endpoint_url=emulator.endpoint, aws_access_key_id=S3_KEY,
                        aws_secret_access_key=S3_SECRET, region_name="us-east-1", config=Config(**S3_CLIENT_CONFIG))


def _s3_location(emulator: Emulator) -> Iterator[StorageLocation]:
    bucket = _unique("s3")
    client = _s3_client(emulator)
    client.create_bucket(Bucket=bucket)
    options = {"key": S3_KEY, "secret": S3_SECRET, "anon": False, "skip_instance_cache": True,
               "client_kwargs": {"endpoint_url": emulator.endpoint}, "config_kwargs": dict(S3_CLIENT_CONFIG)}
    try:
        yield StorageLocation(f"s3://{bucket}/backups", options)
    finally:
        if emulator.alive():
            for upload in client.list_multipart_uploads(Bucket=bucket).get("Uploads", []):
                client.abort_multipart_upload(Bucket=bucket, Key=upload["Key"], UploadId=upload["UploadId"])
            for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket):
                keys = [{"Key": item["Key"]} for item in page.get("Contents", [])]
                if keys:
                    client.delete_objects(Bucket=bucket, Delete={"Objects": keys, "Quiet": True})
            client.delete_bucket(Bucket=bucket)
        client.close()


# --- Azure Blob (Azurite) --------------------------------------------------------------------------------------


def _azure_location(emulator: AzuriteEmulator) -> Iterator[StorageLocation]:
    from azure.storage.blob import BlobServiceClient

    container = _unique("az")
    # The sync SDK client raises on every error (adlfs mkdir() only warns), and fails at once
    # instead of retrying for ~83 s. adlfs itself takes no retry options, so `options` cannot shorten that.
    service = BlobServiceClient.from_connection_string(emulator.connection_string, retry_total=0,
                                                       connection_timeout=2, read_timeout=ADMIN_TIMEOUT)
    service.create_container(container)
    options = {"connection_string": emulator.connection_string, "skip_instance_cache": True}
    try:
        yield StorageLocation(f"az://{container}/backups", options)
    finally:
        if emulator.alive():
            service.delete_container(container)
        service.close()


# --- GCS (gcp-storage-emulator) --------------------------------------------------------------------------------


def _gcs_request(emulator: Emulator, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(f"{emulator.endpoint}/storage/v1/{path}", data=data, method=method,
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=ADMIN_TIMEOUT) as response:
        payload = response.read()
    return json.loads(payload) if payload.strip() else None


def _gcs_location(emulator: Emulator) -> Iterator[StorageLocation]:
    bucket = _unique("gs")
    quoted = urllib.parse.quote(bucket, safe="")
    _gcs_request(emulator, "POST", f"b?project={GCS_PROJECT}", {"name": bucket})
    # New buckets keep deleted objects for 7 days, as on real GCS, and the emulator slows down with every one.
    _gcs_request(emulator, "PATCH", f"b/{quoted}", {"softDeletePolicy": {"retentionDurationSeconds": "0"}})
    options = {"endpoint_url": emulator.endpoint, "token": "anon", "project": GCS_PROJECT,
               "batch_size": GCS_BATCH_SIZE, "skip_instance_cache": True}
    try:
        yield StorageLocation(f"gs://{bucket}/backups", options)
    finally:
        if emulator.alive():
            page_token = ""
            while True:
                listing = _gcs_request(emulator, "GET", f"b/{quoted}/o?pageToken={urllib.parse.quote(page_token)}")
                for item in (listing or {}).get("items", []):
                    with contextlib.suppress(urllib.error.HTTPError):  # already gone
                        _gcs_request(emulator, "DELETE", f"b/{quoted}/o/{urllib.parse.quote(item['name'], safe='')}")
                page_token = (listing or {}).get("nextPageToken", "")
                if not page_token:
                    break
            try:
                _gcs_request(emulator, "DELETE", f"b/{quoted}")
            except urllib.error.HTTPError as exc:
                # 409: an upload left unfinished (the emulator cannot cancel one) keeps the bucket. It is in memory.
                if exc.code != 409:
                    raise


# --- local ------------------------------------------------------------------------------------------------------


def _memory_location() -> Iterator[StorageLocation]:
    root = _unique("backups")
    try:
        yield StorageLocation(f"memory://{root}", {})
    finally:
        fs = fsspec.filesystem("memory")  # one store per process: clean up after the test
        if fs.exists(f"/{root}"):
            fs.rm(f"/{root}", recursive=True)


@pytest.fixture(params=BACKENDS)
def storage_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[StorageLocation]:
    """A URL and fsspec options for a fresh, empty location on each backend.

    file: ``file:///<tmp_path>/backups`` (the directory exists); memory: ``memory://backups-<hex>``;
    s3/azure/gcs: ``s3://``, ``az://``, ``gs://`` ``<new bucket>/backups`` on the session's emulator
    (the bucket exists, nothing is under ``backups``). The bucket is deleted after the test.
    """
    backend: str = request.param
    if backend == "file":
        root = tmp_path / "backups"
        root.mkdir()
        yield StorageLocation(root.as_uri(), {})
    elif backend == "memory":
        yield from _memory_location()
    elif backend == "s3":
        yield from _s3_location(running_emulator(request, "s3"))
    elif backend == "azure":
        emulator = running_emulator(request, "azure")
        assert isinstance(emulator, AzuriteEmulator)
        yield from _azure_location(emulator)
    elif backend == "gcs":
        yield from _gcs_location(running_emulator(request, "gcs"))
    else:
        raise ValueError(f"unknown storage backend {backend!r}; known: {', '.join(BACKENDS)}")
