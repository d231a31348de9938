"""A private Redis server for one test or benchmark, on a free port, keeping nothing on disk.

Never the machine's own Redis (6379): a fault suite that pauses (SIGSTOP) or restarts its
Redis does it to its own. ``restart_empty()`` stops it and starts a new one on the same port
with no data, as a Redis without persistence does after a crash.
"""

from __future__ import annotations

import contextlib
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

import redis


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class PrivateRedis:
    port: int
    directory: Path
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.process = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--dir", str(self.directory)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
        )  # fmt: skip
        deadline = time.monotonic() + 20
        while True:
            with contextlib.suppress(redis.RedisError):
                if redis.Redis(port=self.port, socket_timeout=0.5).ping():
                    return
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("the private redis-server did not start")
            time.sleep(0.05)

    def pause(self) -> None:
        """SIGSTOP: connections stay open, nothing answers."""
        assert self.process is not None
        self.process.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGCONT)

    def stop(self) -> None:
        if self.process is None:
            return
        self.process.send_signal(signal.SIGCONT)
        self.process.kill()
        self.process.wait(10)
        self.process = None

    def restart_empty(self) -> None:
        self.stop()
        self.start()


@contextmanager
def private_redis() -> Iterator[PrivateRedis]:
    """Start one (redis-server from the machine's packages); always stopped at the end."""
    if shutil.which("redis-server") is None:
        raise RuntimeError("no redis-server on this machine (Debian package redis-server)")
    server = PrivateRedis(_free_port(), Path(tempfile.mkdtemp(prefix="rls-cds-redis-")))
    try:
        server.start()
        yield server
    finally:
        server.stop()
        shutil.rmtree(server.directory, ignore_errors=True)
