"""A private PostgreSQL server for one test: initdb into a fresh directory, on a free port.

Never the machine's own server (5432): a test that freezes (SIGSTOP) or stops its database
does it to its own. ``freeze()`` stops the postmaster and every one of its children (each
backend is its own process group: PostgreSQL calls setsid() in every child), as a paused VM
or a hung host would. Run as root (the
test container), the server runs as the ``postgres`` user (initdb refuses root), in a
directory under /tmp that user can reach (pytest's tmp_path is root's alone).
"""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import psycopg
import pytest


def _binaries() -> Path | None:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/postgres"))
    if found:
        return Path(found[-1]).parent
    on_path = shutil.which("postgres")
    return Path(on_path).parent if on_path else None


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class PrivatePostgres:
    process: subprocess.Popen[bytes]
    port: int

    @property
    def url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def freeze(self) -> None:
        """SIGSTOP to the postmaster and all its children: connections stay open, nothing
        answers (the kernel still acknowledges TCP)."""
        self._signal(signal.SIGSTOP)

    def thaw(self) -> None:
        self._signal(signal.SIGCONT)

    def _signal(self, signum: int) -> None:
        for pid in (self.process.pid, *_children(self.process.pid)):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signum)


def _children(parent: int) -> list[int]:
    """The pids whose parent is `parent` (from /proc)."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError, ValueError, IndexError):
            # the field after ") " is the state, then the parent pid
            fields = stat.read_text().rsplit(") ", 1)[1].split()
            if int(fields[1]) == parent:
                found.append(int(stat.parent.name))
    return found


@contextmanager
def private_postgres() -> Iterator[PrivatePostgres]:
    """Start a server (skips the test when the machine has no PostgreSQL binaries); always
    thawed and stopped at the end, its directory removed."""
    binaries = _binaries()
    if binaries is None:
        pytest.skip("no PostgreSQL server binaries on this machine")
    root = Path(tempfile.mkdtemp(prefix="rls-cds-pg-"))
    user: str | None = None
    if os.geteuid() == 0:
        user = "postgres"
        entry = pwd.getpwnam(user)
        os.chown(root, entry.pw_uid, entry.pw_gid)
    data, sockets = root / "data", root / "sockets"
    process: subprocess.Popen[bytes] | None = None
    try:
        subprocess.run(
            [str(binaries / "initdb"), "-D", str(data), "-U", "postgres", "-A", "trust",
             "--no-sync", "-E", "UTF8"],
            check=True, capture_output=True, user=user, timeout=60,
        )  # fmt: skip
        subprocess.run(["mkdir", str(sockets)], check=True, user=user)
        port = _free_port()
        process = subprocess.Popen(
            [str(binaries / "postgres"), "-D", str(data), "-p", str(port),
             "-c", "listen_addresses=127.0.0.1", "-k", str(sockets), "-c", "fsync=off",
             "-c", "shared_buffers=16MB", "-c", "max_connections=40"],
            user=user, start_new_session=True,
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        server = PrivatePostgres(process, port)
        _wait_ready(server)
        yield server
    finally:
        if process is not None:
            PrivatePostgres(process, 0).thaw()
            with contextlib.suppress(ProcessLookupError):
                process.send_signal(signal.SIGINT)  # fast shutdown
            try:
                process.wait(20)
            except subprocess.TimeoutExpired:
                for pid in (*_children(process.pid), process.pid):
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(pid, signal.SIGKILL)
                process.wait(10)
        shutil.rmtree(root, ignore_errors=True)


def _wait_ready(server: PrivatePostgres, seconds: float = 30) -> None:
    deadline = time.monotonic() + seconds
    while True:
        try:
            with psycopg.connect(server.url, connect_timeout=2):
                return
        except psycopg.OperationalError:
            if server.process.poll() is not None or time.monotonic() > deadline:
                raise
            time.sleep(0.1)
