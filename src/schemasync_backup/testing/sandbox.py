"""A throwaway local MariaDB server: temp datadir, loopback port and unix socket.

Used by the demo, the tests and the benchmarks, and useful to anyone who wants to try a
restore without touching a real server. It needs the ``mariadbd`` and
``mariadb-install-db`` programs (Debian package ``mariadb-server``).
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from types import TracebackType

import attrs

from schemasync_backup.errors import ServerStartError

_SERVER_PROGRAMS = ("mariadbd", "mysqld")
_INSTALL_PROGRAMS = ("mariadb-install-db", "mysql_install_db")
_SEARCH_PATH = os.pathsep.join([os.environ.get("PATH", ""), "/usr/sbin", "/usr/bin"])


def _find_program(names: tuple[str, ...]) -> str:
    for name in names:
        found = shutil.which(name, path=_SEARCH_PATH)
        if found:
            return found
    raise ServerStartError(
        f"cannot find {' or '.join(names)}: install the MariaDB server "
        "(Debian: apt-get install mariadb-server)",
        subject=names,
    )


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _scratch_root() -> str | None:
    # A RAM-backed datadir makes DDL-heavy tests several times faster; fall back to /tmp.
    shm = Path("/dev/shm")
    return str(shm) if shm.is_dir() and os.access(shm, os.W_OK) else None


@attrs.define
class ThrowawayServer:
    """A private ``mariadbd`` that lives as long as this object (use it as a context manager).

    Root has no password and may connect over TCP from 127.0.0.1 or over the socket.
    """

    port: int = attrs.field(factory=_free_port)
    startup_timeout: float = 60.0
    extra_options: tuple[str, ...] = ()
    workdir: Path | None = attrs.field(default=None, init=False)
    _process: subprocess.Popen[bytes] | None = attrs.field(default=None, init=False)

    @property
    def socket_path(self) -> Path:
        return self._dir / "mariadb.sock"

    @property
    def dsn(self) -> str:
        """A DSN for root on this server, over TCP on loopback."""
        return f"mysql://root@127.0.0.1:{self.port}/"

    def dsn_for(self, database: str, user: str = "root", password: str = "") -> str:
        from urllib.parse import quote

        auth = quote(user, safe="") + (":" + quote(password, safe="") if password else "")
        return f"mysql://{auth}@127.0.0.1:{self.port}/{quote(database, safe='')}"

    @property
    def _dir(self) -> Path:
        if self.workdir is None:
            raise ServerStartError("the throwaway server is not started", subject=self)
        return self.workdir

    def start(self) -> ThrowawayServer:
        server = _find_program(_SERVER_PROGRAMS)
        installer = _find_program(_INSTALL_PROGRAMS)
        self.workdir = Path(tempfile.mkdtemp(prefix="schemasync-mariadb-", dir=_scratch_root()))
        datadir = self.workdir / "data"
        log = self.workdir / "server.log"
        as_root = ["--user=root"] if os.geteuid() == 0 else []
        install = subprocess.run(
            [installer, "--no-defaults", f"--datadir={datadir}", "--skip-test-db",
             "--auth-root-authentication-method=normal", *as_root],
            capture_output=True, check=False,
        )
        if install.returncode != 0:
            self.stop()
            raise ServerStartError(
                f"mariadb-install-db failed: {install.stderr.decode(errors='replace')[-2000:]}",
                subject=installer,
            )
        # A private tmpdir: internal temporary tables must not share /tmp with anything that cleans it.
        tmpdir = self.workdir / "tmp"
        tmpdir.mkdir()
        command = [
            server, "--no-defaults", f"--datadir={datadir}", f"--socket={self.socket_path}", f"--tmpdir={tmpdir}",
            f"--port={self.port}", "--bind-address=127.0.0.1", f"--log-error={log}",
            f"--pid-file={self.workdir / 'mariadb.pid'}", "--skip-name-resolve",
            "--innodb-buffer-pool-size=256M", "--innodb-flush-log-at-trx-commit=0",
            "--innodb-doublewrite=0", "--innodb-use-native-aio=0", "--skip-log-bin",
            "--character-set-server=utf8mb4", "--collation-server=utf8mb4_general_ci",
            "--table-open-cache=8000", "--table-definition-cache=8000",
            "--max-connections=200", *as_root, *self.extra_options,
        ]
        self._process = subprocess.Popen(
            command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
        )
        self._wait_until_ready(log)
        return self

    def _wait_until_ready(self, log: Path) -> None:
        deadline = time.monotonic() + self.startup_timeout
        while time.monotonic() < deadline:
            if self._process is not None and self._process.poll() is not None:
                break
            # A raw probe, not a client connection: a failed PyMySQL connect leaks its socket.
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
                try:
                    probe.connect(str(self.socket_path))
                    if probe.recv(1):
                        return
                except OSError:
                    pass
            time.sleep(0.1)
        tail = log.read_text(errors="replace")[-2000:] if log.exists() else ""
        self.stop()
        raise ServerStartError(f"mariadbd did not start: {tail}", subject=self.port)

    def stop(self) -> None:
        if self._process is not None and self._process.poll() is None:
            self._process.send_signal(signal.SIGTERM)
            try:
                self._process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()
        self._process = None
        if self.workdir is not None:
            shutil.rmtree(self.workdir, ignore_errors=True)
            self.workdir = None

    def __enter__(self) -> ThrowawayServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
