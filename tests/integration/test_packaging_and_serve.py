"""What a newcomer does: install the package, run the CLI anywhere, start the server, curl it."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import tarfile
import time
import urllib.error
import urllib.request
import zipfile
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from tests import builders as b
from tests.fixture_requests import PATIENTS

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--no-build-isolation",
         "--wheel-dir", str(out), str(ROOT)],
        check=True,
        capture_output=True,
    )  # fmt: skip
    (found,) = out.glob("rls_cds-*.whl")
    return found


def test_wheel_carries_knowledge_base_and_demo_data(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    for card in (ROOT / "cards").rglob("*.*"):
        assert f"cds_service/_data/cards/{card.relative_to(ROOT / 'cards')}" in names
    assert "cds_service/_data/fhir_fixtures/patients/rls-low-ferritin.json" in names
    for asset in ("templates/demo.html", "templates/demo_card.html", "static/demo.js"):
        assert f"cds_service/{asset}" in names  # the demo page
    assert any(n.endswith("entry_points.txt") for n in names)


def test_installed_cli_works_from_any_directory(wheel, tmp_path):
    """Unpacked wheel first on the path, run from an unrelated directory: no source tree."""
    site = tmp_path / "site"
    zipfile.ZipFile(wheel).extractall(site)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = {**os.environ, "PYTHONPATH": str(site)}
    probe = subprocess.run(
        [sys.executable, "-c", "import cds_service; print(cds_service.__file__)"],
        cwd=elsewhere, env=env, capture_output=True, text=True, check=True,
    )  # fmt: skip
    assert probe.stdout.startswith(str(site))
    result = subprocess.run(
        [sys.executable, "-m", "cds_service", "evaluate", "--hook", "patient-view",
         "--bundle", str(PATIENTS / "rls-low-ferritin.json"), "--now", "2026-11-28T12:00:00Z"],
        cwd=elsewhere, env=env, capture_output=True, text=True,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    cards = json.loads(result.stdout)["cards"]
    assert [c["source"]["topic"]["code"] for c in cards] == ["iron-below-target"]
    assert list(elsewhere.iterdir()) == []


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def fetch(url: str, body: dict | None = None) -> tuple[int, dict]:
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=10) as response:
        return response.status, json.loads(response.read())


def wait_until_healthy(base: str, server: subprocess.Popen, seconds: float = 20) -> None:
    deadline = time.monotonic() + seconds
    while True:
        try:
            fetch(f"{base}/healthz")
            return
        except OSError:
            assert server.poll() is None, server.stdout.read()
            assert time.monotonic() < deadline, "server did not start"
            time.sleep(0.1)


def test_rls_cds_serve_answers_discovery_and_patient_view_over_a_socket(tmp_path):
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "cds_service", "serve", "--demo", "--port", str(port)],
        cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    try:
        wait_until_healthy(base, server)
        status, discovery = fetch(f"{base}/cds-services")
        assert status == 200 and len(discovery["services"]) == 3
        # The server runs on the real clock, so the lab is dated relative to today.
        recent = (datetime.now(UTC) - timedelta(days=30)).isoformat()
        body = b.hook_request(b.prefetch(b.rls(), b.observation(b.FERRITIN, 38, "ng/mL", recent)))
        status, response = fetch(f"{base}/cds-services/rls-secondary-causes", body)
        assert status == 200
        assert response["cards"][0]["source"]["topic"]["code"] == "iron-below-target"
        assert fetch(f"{base}/readyz")[0] == 200
    finally:
        server.terminate()
        output = server.communicate(timeout=10)[0]
    assert "DEMO MODE" in output


def dockerfile_command() -> list[str]:
    (line,) = [ln for ln in (ROOT / "Dockerfile").read_text().splitlines() if ln.startswith("CMD")]
    return json.loads(line.removeprefix("CMD"))


def start_prod(command: list[str], cwd: Path, **environ: str) -> tuple[subprocess.Popen, str]:
    """`rls-cds serve --prod ...` on a free loopback port; the process and its base URL."""
    port = free_port()
    command = [*command]
    command[command.index("--host") + 1] = "127.0.0.1"
    command[command.index("--port") + 1] = str(port)
    env = {k: v for k, v in os.environ.items() if not k.startswith("RLS_CDS_")}
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    env |= {"RLS_CDS_DATA_DIR": str(cwd / "var"), "RLS_CDS_WORKERS": "2", **environ}
    rls_cds = Path(sys.executable).with_name("rls-cds")
    server = subprocess.Popen(
        [str(rls_cds), *command[1:]], cwd=cwd, env=env,
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    return server, f"http://127.0.0.1:{port}"


def test_dockerfile_command_serves_under_gunicorn_and_fails_closed(tmp_path):
    """The image's own command line, bound to loopback: healthy, and hooks need a trusted JWT."""
    command = dockerfile_command()
    assert command[:3] == ["rls-cds", "serve", "--prod"]
    server, base = start_prod(command, tmp_path, RLS_CDS_PUBLIC_BASE_URL="https://cds.example.org")
    try:
        wait_until_healthy(base, server)
        body = b.hook_request()
        with pytest.raises(urllib.error.HTTPError) as refused:
            fetch(f"{base}/cds-services/rls-secondary-causes", body)
        assert refused.value.code == 401
        assert fetch(f"{base}/readyz")[0] == 200
    finally:
        server.terminate()
        output = server.communicate(timeout=30)[0]
    assert "no trusted CDS clients" in output
    assert "Using worker: gthread" in output


def test_dockerfile_command_refuses_to_start_without_a_public_base_url(tmp_path):
    """Outside demo mode the aud of a JWT is checked against RLS_CDS_PUBLIC_BASE_URL, never
    against the caller's Host header: without it the service does not start (exit 2)."""
    server, _ = start_prod(dockerfile_command(), tmp_path)
    output = server.communicate(timeout=60)[0]
    assert server.returncode == 2
    assert "RLS_CDS_PUBLIC_BASE_URL must be set outside demo mode" in output
    assert "Booting worker" not in output


def scrape(base: str) -> str:
    with urllib.request.urlopen(f"{base}/metrics", timeout=10) as response:
        return response.read().decode()


def test_serve_prod_answers_hooks_from_every_worker_and_sums_their_metrics(tmp_path):
    """gunicorn with the config module: two workers, a hook answered, /metrics adds up both
    workers, and SIGTERM shuts down gracefully."""
    command = ["rls-cds", "serve", "--prod", "--demo", "--host", "x", "--port", "0"]
    server, base = start_prod(command, tmp_path)
    try:
        wait_until_healthy(base, server)
        recent = (datetime.now(UTC) - timedelta(days=30)).isoformat()
        low = b.observation(b.FERRITIN, 38, "ng/mL", recent)
        calls = 6
        for _ in range(calls):  # new connections: gunicorn spreads them over the workers
            status, response = fetch(
                f"{base}/cds-services/rls-secondary-causes",
                b.hook_request(b.prefetch(b.rls(), low)),
            )
            assert status == 200
            assert response["cards"][0]["source"]["topic"]["code"] == "iron-below-target"
        page = scrape(base)
        assert (
            'rls_cds_hook_duration_seconds_count{service="rls-secondary-causes",status="200"} '
            f"{calls}.0"
        ) in page
        assert f'topic="iron-below-target"}} {calls}.0' in page
    finally:
        server.terminate()
        output = server.communicate(timeout=30)[0]
    assert server.returncode == 0
    assert output.count("Booting worker") == 2
    assert "Shutting down: Master" in output


def test_serve_prod_with_a_metrics_port_keeps_metrics_off_the_main_port(tmp_path):
    """RLS_CDS_METRICS_PORT: gunicorn binds a second port; /metrics answers only there (what
    deploy/k8s's NetworkPolicy keeps inside the cluster), the hooks only on the main port."""
    metrics_port = free_port()
    command = ["rls-cds", "serve", "--prod", "--demo", "--host", "x", "--port", "0"]
    server, base = start_prod(command, tmp_path, RLS_CDS_METRICS_PORT=str(metrics_port))
    internal = f"http://127.0.0.1:{metrics_port}"
    try:
        wait_until_healthy(base, server)
        assert fetch(f"{base}/cds-services/rls-secondary-causes", b.hook_request())[0] == 200
        assert "rls_cds_hook_duration_seconds_count" in scrape(internal)
        with pytest.raises(urllib.error.HTTPError) as hidden:
            scrape(base)
        assert hidden.value.code == 404
        with pytest.raises(urllib.error.HTTPError) as no_hooks:
            fetch(f"{internal}/cds-services/rls-secondary-causes", b.hook_request())
        assert no_hooks.value.code == 404
        assert fetch(f"{internal}/readyz")[0] == 200
    finally:
        server.terminate()
        server.communicate(timeout=30)
    assert server.returncode == 0


def test_sdist_carries_every_file_the_repository_tracks(tmp_path):
    """The source distribution is enough to run the suite: every tracked file is in it."""
    subprocess.run(
        [sys.executable, "-m", "hatchling", "build", "--target", "sdist", "-d", str(tmp_path)],
        cwd=ROOT, check=True, capture_output=True,
    )  # fmt: skip
    (sdist,) = tmp_path.glob("rls_cds-*.tar.gz")
    with tarfile.open(sdist) as archive:
        names = {name.split("/", 1)[1] for name in archive.getnames() if "/" in name}
    tracked = subprocess.run(
        ["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout.split()
    assert [name for name in tracked if name not in names] == []
    assert not any("node_modules" in name for name in names)
