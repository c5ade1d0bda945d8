"""A throwaway PostgreSQL server on 127.0.0.1 for the PostgreSQL test tier.

``running_postgres`` runs ``initdb`` in a fresh temporary folder and starts ``postgres``
on a free loopback port (its unix socket in that folder), with trust authentication, no
fsync and a non-UTC time zone (so code that leans on the server's zone shows up). As
root the server runs as the ``postgres`` user (``initdb`` refuses root). The process and
the folder are removed on exit, also when a test failed.

``PostgresServer.create_database(template=...)`` copies a migrated template database in
about 0.1 s, so each test can have its own; ``TemplateCopies`` makes them ahead and drops
them in the background.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import pwd
import queue
import shutil
import signal
import subprocess
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import psycopg
from psycopg import sql

from bot.ops.environments import postgres_bin_dir
from bot.ops.stack import free_port

SERVER_USER = "postgres"  # the Debian package's system user, and the database superuser
# Far from UTC and not a whole hour: a query that turns timestamps into dates or hours
# in the server's zone gives visibly different figures from SQLite.
SERVER_TIMEZONE = "Pacific/Chatham"
_PR_SET_PDEATHSIG = 1


@dataclass(frozen=True)
class PostgresServer:
    """A running throwaway server: create and drop databases, build their URLs."""

    host: str
    port: int
    user: str

    def url(self, database: str, *, driver: str = "postgresql+psycopg") -> str:
        """The SQLAlchemy URL of ``database`` on this server."""
        return f"{driver}://{self.user}@{self.host}:{self.port}/{database}"

    def admin_connection(self) -> psycopg.Connection[tuple[object, ...]]:
        """An autocommit connection to the ``postgres`` maintenance database."""
        return psycopg.connect(
            host=self.host, port=self.port, user=self.user, dbname="postgres", autocommit=True
        )

    def create_database(self, *, template: str | None = None, prefix: str = "t") -> str:
        """Create a new, uniquely named database (a copy of ``template`` if given)."""
        name = f"{prefix}_{uuid.uuid4().hex[:12]}"
        statement = sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name))
        if template is not None:
            # FILE_COPY: a plain copy of the files, the quicker of the two for small databases.
            statement = sql.SQL("{} TEMPLATE {} STRATEGY FILE_COPY").format(
                statement, sql.Identifier(template)
            )
        with self.admin_connection() as connection:
            connection.execute(statement)
        return name

    def drop_database(self, name: str) -> None:
        """Drop ``name``, ending any connection a test left open."""
        with self.admin_connection() as connection:
            connection.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )


def _server_account() -> tuple[int, int] | None:
    """The (uid, gid) to run the server as: ``postgres`` when we are root, else ourselves."""
    if os.geteuid() != 0:
        return None
    entry = pwd.getpwnam(SERVER_USER)
    return entry.pw_uid, entry.pw_gid


def _stop_with_parent() -> None:
    """In the server's process before exec: a fast shutdown (SIGINT) if the test run dies.

    Linux's parent-death signal, so a killed pytest leaves no server behind (the folder
    in /tmp stays). Set after the switch to the server's user, which would clear it.
    """
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGINT)


def _run_as(account: tuple[int, int] | None) -> dict[str, int]:
    if account is None:
        return {}
    return {"user": account[0], "group": account[1], "extra_groups": []}


def _wait_until_ready(
    server: PostgresServer, process: subprocess.Popen[bytes], log: Path, timeout: float
) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            with server.admin_connection() as connection:
                connection.execute("SELECT 1")
            return
        except psycopg.OperationalError as error:
            if process.poll() is not None or time.monotonic() > deadline:
                output = log.read_text(errors="replace") if log.exists() else ""
                raise RuntimeError(f"postgres did not start: {error}\n{output}") from error
            time.sleep(0.05)


@contextmanager
def running_postgres(*, timeout: float = 30.0) -> Iterator[PostgresServer]:
    """Start a throwaway PostgreSQL server; stop it and delete its folder on exit.

    Args:
        timeout: Seconds to wait for the first connection to succeed.

    Yields:
        The running server.

    Raises:
        FileNotFoundError: No PostgreSQL server binaries (``/usr/lib/postgresql/*/bin``).
        RuntimeError: ``initdb`` failed or the server did not start.
    """
    bin_dir = postgres_bin_dir()
    if bin_dir is None:
        raise FileNotFoundError("no PostgreSQL server binaries under /usr/lib/postgresql/*/bin")
    account = _server_account()
    # Not under pytest's basetemp: that folder is private to root, and the server runs
    # as another user.
    workdir = Path(tempfile.mkdtemp(prefix="concierge-pg-"))
    process: subprocess.Popen[bytes] | None = None
    try:
        data = workdir / "data"
        data.mkdir(mode=0o700)
        log = workdir / "server.log"
        if account is not None:
            for path in (workdir, data):
                os.chown(path, *account)
        initdb = subprocess.run(
            [
                str(bin_dir / "initdb"),
                "--pgdata",
                str(data),
                "--username",
                SERVER_USER,
                "--auth",
                "trust",
                "--encoding",
                "UTF8",
                "--locale",
                "C.UTF-8",
                "--no-sync",
            ],
            capture_output=True,
            text=True,
            check=False,
            **_run_as(account),
        )
        if initdb.returncode != 0:
            raise RuntimeError(f"initdb failed:\n{initdb.stdout}\n{initdb.stderr}")
        port = free_port()
        server = PostgresServer(host="127.0.0.1", port=port, user=SERVER_USER)
        with log.open("wb") as log_file:
            if account is not None:
                os.chown(log, *account)
            process = subprocess.Popen(
                [
                    str(bin_dir / "postgres"),
                    "-D",
                    str(data),
                    "-c",
                    "listen_addresses=127.0.0.1",
                    "-c",
                    f"port={port}",
                    "-c",
                    f"unix_socket_directories={workdir}",
                    "-c",
                    "fsync=off",
                    "-c",
                    "synchronous_commit=off",
                    "-c",
                    "full_page_writes=off",
                    "-c",
                    "max_connections=100",
                    "-c",
                    f"timezone={SERVER_TIMEZONE}",
                    # A deadlock is reported after 200 ms instead of 1 s.
                    "-c",
                    "deadlock_timeout=200ms",
                ],
                stdout=log_file,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                preexec_fn=_stop_with_parent,  # only a prctl call: safe with threads
                **_run_as(account),
            )
        _wait_until_ready(server, process, log, timeout)
        yield server
    finally:
        if process is not None and process.poll() is None:
            # SIGINT is the "fast" shutdown: it ends sessions a failed test left open
            # (SIGTERM's "smart" shutdown would wait for them).
            process.send_signal(signal.SIGINT)
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=5)
        shutil.rmtree(workdir, ignore_errors=True)


class TemplateCopies:
    """Fresh copies of a template database, made ahead and dropped in background threads.

    A copy takes about 0.1 s to create and as long to drop; done while the previous test
    runs, neither is on the test's clock.
    """

    def __init__(self, server: PostgresServer, template: str, *, ahead: int = 2) -> None:
        self._server = server
        self._template = template
        self._ready: queue.Queue[str] = queue.Queue(maxsize=ahead)
        self._finished: queue.Queue[str | None] = queue.Queue()
        self._stop = threading.Event()
        self._error: BaseException | None = None
        self._maker = threading.Thread(target=self._make, name="pg-copies", daemon=True)
        self._dropper = threading.Thread(target=self._drop, name="pg-drops", daemon=True)
        self._maker.start()
        self._dropper.start()

    def _make(self) -> None:
        try:
            while not self._stop.is_set():
                name = self._server.create_database(template=self._template)
                while True:
                    try:
                        self._ready.put(name, timeout=0.2)
                        break
                    except queue.Full:
                        if self._stop.is_set():
                            self._finished.put(name)
                            return
        except BaseException as error:  # surfaced by take()
            self._error = error

    def _drop(self) -> None:
        while (name := self._finished.get()) is not None:
            self._server.drop_database(name)

    def take(self, *, timeout: float = 60.0) -> str:
        """A fresh copy for one test; give it back with :meth:`give_back`."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                return self._ready.get(timeout=0.2)
            except queue.Empty:
                if self._error is not None:
                    raise RuntimeError("copying the template database failed") from self._error
                if time.monotonic() > deadline:
                    raise TimeoutError("no copy of the template database in time") from None

    def give_back(self, name: str) -> None:
        """The test is done with ``name``: it is dropped in the background."""
        self._finished.put(name)

    def close(self) -> None:
        """Stop making copies and drop every one left (waits for the drops)."""
        self._stop.set()
        self._maker.join(timeout=30)
        while True:
            try:
                self._finished.put(self._ready.get_nowait())
            except queue.Empty:
                break
        self._finished.put(None)
        self._dropper.join(timeout=60)
