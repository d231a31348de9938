"""Start-up under a second (issue 20, point 4): the gunicorn master imports the application
once before it forks, migrates the store once, and ``rls-cds`` hands over to gunicorn
before it imports anything heavy. (The time itself is benchmark P4s, not asserted here:
no wall-clock assertions.)"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from tests import builders as b
from tests.integration.test_packaging_and_serve import fetch, free_port

ROOT = Path(__file__).resolve().parents[2]
#: What the master imports for its workers, and the CLI must not before it hands over.
HEAVY = ("alembic", "redis", "fhir", "flask")


def clean_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("RLS_CDS_")}
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    return env | {"RLS_CDS_DATA_DIR": str(tmp_path / "var"), "PYTHONPATH": str(ROOT), **extra}


def wait_until_ready(base: str, server: subprocess.Popen, seconds: float = 30) -> None:
    """Until /readyz answers 200 (the server's output goes to a file, not a pipe)."""
    deadline = time.monotonic() + seconds
    while True:
        try:
            if fetch(f"{base}/readyz")[0] == 200:
                return
        except OSError:
            pass
        assert server.poll() is None, "the server exited"
        assert time.monotonic() < deadline, "the server did not become ready"
        time.sleep(0.05)


def test_the_cli_reads_serve_prod_and_its_settings_without_a_heavy_import(tmp_path):
    """All the CLI does before gunicorn takes over: parse the command, read the settings."""
    script = (
        "import sys\n"
        "from cds_service import cli\n"
        "cli._parser().parse_args(['serve', '--prod', '--demo'])\n"
        "cli.settings_from_env(demo=True)\n"
        "print(' '.join(sorted({m.split('.')[0] for m in sys.modules})))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", script], env=clean_env(tmp_path), cwd=tmp_path,
        capture_output=True, text=True, check=True, timeout=60,
    )  # fmt: skip
    loaded = set(result.stdout.split())
    assert not loaded & set(HEAVY), loaded & set(HEAVY)
    assert "sqlalchemy" not in loaded and "gunicorn" not in loaded


def test_the_master_tells_its_workers_that_the_store_is_migrated(tmp_path):
    """After cds_service.preload, the settings a worker reads skip the migration."""
    script = (
        "from cds_service import preload\n"
        "from cds_service.settings import Settings\n"
        "preload.prepare(Settings())\n"
        "print(Settings().migrate_on_start)\n"
        "preload.cleanup()\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", script], env=clean_env(tmp_path, RLS_CDS_DEMO="true"),
        cwd=tmp_path, capture_output=True, text=True, check=True, timeout=60,
    )  # fmt: skip
    assert result.stdout.strip().splitlines()[-1] == "False"
    assert (tmp_path / "var" / "rls-cds.sqlite3").is_file()


def test_serve_prod_imports_once_migrates_once_answers_and_stops_cleanly(tmp_path):
    """`rls-cds serve --prod`, two workers, with Python's import log on: gunicorn is imported
    before any heavy module (the hand-over), the master migrates once, /readyz and a hook
    answer, and SIGTERM stops every process (exit 0)."""
    port = free_port()
    env = clean_env(tmp_path, RLS_CDS_WORKERS="2", RLS_CDS_DEMO="true", PYTHONPROFILEIMPORTTIME="1")
    log = tmp_path / "server.log"  # a file: the import log would fill a pipe nobody reads
    with log.open("w") as sink:
        server = subprocess.Popen(
            [sys.executable, "-m", "cds_service", "serve", "--prod", "--port", str(port)],
            cwd=tmp_path, env=env, stdout=sink, stderr=subprocess.STDOUT, text=True,
        )  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    try:
        wait_until_ready(base, server)
        status, answer = fetch(f"{base}/cds-services/rls-secondary-causes", b.hook_request())
        assert status == 200 and "cards" in answer
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=60)
    output = log.read_text()
    assert server.returncode == 0, output[-3000:]
    lines = [line for line in output.splitlines() if line.startswith("import time:")]
    imported = [line.rsplit("|", 1)[-1].strip() for line in lines]
    handover = imported.index("gunicorn.app.wsgiapp")
    first_heavy = min(i for i, name in enumerate(imported) if name.split(".")[0] in HEAVY)
    assert handover < first_heavy, imported[first_heavy]
    assert output.count("store migrated by the gunicorn master") == 1
    assert output.count("Booting worker") == 2
    assert output.count('"service ready"') == 2
    assert "Shutting down: Master" in output
