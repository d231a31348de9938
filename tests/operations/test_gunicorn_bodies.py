"""Under gunicorn (what production runs): a chunked body over RLS_CDS_MAX_BODY_BYTES is 413,
one of exactly the limit is read whole (issue 17; tests/hardening checks werkzeug's server).

gunicorn's worker sets ``wsgi.input_terminated`` and de-chunks the body itself, a different
path from werkzeug's, so the limit is checked on both.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from tests import builders as b
from tests.live import chunked_post, padded

LIMIT = 64 * 1024
HOOK = "/cds-services/rls-secondary-causes"
START_S = 20.0


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="module")
def gunicorn_url(tmp_path_factory) -> Iterator[str]:
    data: Path = tmp_path_factory.mktemp("gunicorn")
    port = _free_port()
    env = {
        **os.environ,
        "RLS_CDS_DEMO": "true",
        "RLS_CDS_DATA_DIR": str(data),
        "RLS_CDS_MAX_BODY_BYTES": str(LIMIT),
        "RLS_CDS_WORKERS": "1",
        "RLS_CDS_THREADS": "2",
        "RLS_CDS_BIND": f"127.0.0.1:{port}",
        "RLS_CDS_LOG_LEVEL": "ERROR",
        "PROMETHEUS_MULTIPROC_DIR": str(data),
    }
    command = [sys.executable, "-m", "gunicorn", "-c", "python:cds_service.gunicorn_conf",
               "cds_service.app:create_app()"]  # fmt: skip
    server = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + START_S
        while True:
            try:
                if requests.get(url + "/healthz", timeout=1).status_code == 200:
                    break
            except (requests.ConnectionError, requests.Timeout):  # not listening, booting
                pass
            if server.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"gunicorn did not start: {server.stderr.read()[-2000:]!r}")
            time.sleep(0.1)
        yield url
    finally:
        server.terminate()
        try:
            server.wait(timeout=10)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()


@pytest.mark.parametrize("path", [HOOK, HOOK + "/feedback"])
def test_a_chunked_body_over_the_limit_is_413(gunicorn_url, path):
    answer = chunked_post(gunicorn_url, path, padded(b.hook_request(), LIMIT + 1), chunk=4096)
    assert answer.startswith(b"HTTP/1.1 413"), answer[:200]


def test_a_chunked_body_of_exactly_the_limit_is_answered(gunicorn_url):
    answer = chunked_post(gunicorn_url, HOOK, padded(b.hook_request(), LIMIT), chunk=4096)
    assert answer.startswith(b"HTTP/1.1 200"), answer[:200]
