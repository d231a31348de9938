"""Release hygiene: one version everywhere, a command line that reads as plain text, and
configuration errors that name their setting in one line (exit 2) instead of a traceback."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from importlib.metadata import version
from pathlib import Path

import pytest

import cds_service
from cds_service.hooks.services import VERSION_EXTENSION

ROOT = Path(__file__).resolve().parents[2]
BUNDLE = str(ROOT / "fhir_fixtures" / "patients" / "rls-low-ferritin.json")
SETTING_VARIABLES = ("RLS_CDS_", "DATABASE_URL", "REDIS_URL", "PROMETHEUS_MULTIPROC_DIR")


def clean_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    """The environment without any service setting of the developer's shell."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(SETTING_VARIABLES)}
    return {**env, "RLS_CDS_DATA_DIR": str(tmp_path / "var"), **extra}


def rls_cds(*args: str, env: dict[str, str], timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "cds_service", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=ROOT,
    )


def released_version() -> str:
    """The newest released version the CHANGELOG names (Keep a Changelog headings)."""
    changelog = (ROOT / "CHANGELOG.md").read_text("utf-8")
    assert "## [Unreleased]" in changelog
    found = re.search(r"^## \[(\d+\.\d+\.\d+)\] - \d{4}-\d{2}-\d{2}$", changelog, re.MULTILINE)
    assert found, "CHANGELOG.md names no released version"
    return found.group(1)


class TestOneVersion:
    def test_version_option_prints_the_version_the_changelog_names(self, tmp_path):
        result = rls_cds("--version", env=clean_env(tmp_path))
        assert result.returncode == 0
        assert result.stdout.strip() == f"rls-cds {released_version()}"

    def test_package_metadata_has_the_same_version(self):
        assert version("rls-cds") == cds_service.__version__ == released_version()

    def test_discovery_document_carries_the_version(self, client):
        services = client.get("/cds-services").get_json()["services"]
        assert {s["extension"][VERSION_EXTENSION] for s in services} == {released_version()}

    def test_image_label_defaults_to_the_same_version(self):
        dockerfile = (ROOT / "Dockerfile").read_text("utf-8")
        assert f"ARG VERSION={released_version()}\n" in dockerfile
        assert 'org.opencontainers.image.version="${VERSION}"' in dockerfile


class TestPlainHelp:
    def test_help_is_plain_text_with_examples(self, tmp_path):
        result = rls_cds("--help", env=clean_env(tmp_path))
        assert result.returncode == 0
        assert "``" not in result.stdout
        assert "examples:" in result.stdout and "rls-cds serve --demo" in result.stdout
        for command in ("serve", "evaluate", "check", "feedback-report", "--version"):
            assert command in result.stdout


class TestConfigurationErrors:
    @pytest.mark.parametrize("prod", [False, True], ids=["serve", "serve --prod"])
    @pytest.mark.parametrize(
        ("variable", "value", "named"),
        [
            ("RLS_CDS_PORT", "eighty", "RLS_CDS_PORT"),
            ("RLS_CDS_HOOK_DEADLINE_S", "-1", "RLS_CDS_HOOK_DEADLINE_S"),
            ("RLS_CDS_LOG_LEVEL", "LOUD", "RLS_CDS_LOG_LEVEL"),
            ("RLS_CDS_TRUSTED_CLIENTS", "/nonexistent/clients.json", "RLS_CDS_TRUSTED_CLIENTS"),
            ("DATABASE_URL", "postgresql://cds@127.0.0.1:1/cds", "RLS_CDS_PATIENT_KEY_SECRET"),
            ("RLS_CDS_PUBLIC_BASE_URL", "", "RLS_CDS_PUBLIC_BASE_URL"),
        ],
    )
    def test_a_bad_setting_is_one_line_naming_it_and_exit_2(
        self, tmp_path, prod, variable, value, named
    ):
        args = ["serve", "--port", "1"] if variable != "RLS_CDS_PORT" else ["serve"]
        env = clean_env(tmp_path, RLS_CDS_PUBLIC_BASE_URL="https://cds.example.org")
        result = rls_cds(*args, *(["--prod"] if prod else []), env={**env, variable: value})
        assert result.returncode == 2, result.stderr
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1, result.stderr
        assert lines[0].startswith("rls-cds: ") and named in lines[0]
        assert "Traceback" not in result.stderr

    def test_a_secret_value_is_not_repeated_in_the_error(self, tmp_path):
        env = clean_env(tmp_path, RLS_CDS_JWT_LEEWAY_S="s3cr3t-looking-value")
        result = rls_cds("evaluate", "--hook", "patient-view", "--bundle", BUNDLE, env=env)
        assert result.returncode == 2
        assert "RLS_CDS_JWT_LEEWAY_S" in result.stderr
        assert "s3cr3t-looking-value" not in result.stderr


def test_generated_secrets_and_keys_are_ignored_by_git(tmp_path):
    for path in ("dev-keys/client.key.pem", "var/patient-key.secret", "test-output/x.png"):
        ignored = subprocess.run(
            ["git", "check-ignore", "-q", path], cwd=ROOT, capture_output=True, check=False
        )
        assert ignored.returncode == 0, f"{path} is not ignored by git"


def locked(path: Path) -> dict[str, str]:
    """name -> version of the pins in a lock file whose environment markers hold here."""
    from packaging.markers import Marker
    from packaging.utils import canonicalize_name

    pins = {}
    for line in path.read_text("utf-8").splitlines():
        found = re.match(r"^([A-Za-z0-9_.\-\[\]]+)==([^ ;\\]+)\s*(?:;\s*([^\\]+?))?\s*\\?$", line)
        if found and (found.group(3) is None or Marker(found.group(3)).evaluate()):
            pins[canonicalize_name(found.group(1).split("[")[0])] = found.group(2)
    return pins


def test_the_environment_holds_exactly_the_locked_versions():
    """`make test` installed requirements/dev.txt (and build.txt): what runs is what is locked,
    and the runtime lock agrees with the dev lock on every package they share."""
    from importlib.metadata import PackageNotFoundError

    requirements = ROOT / "requirements"
    dev, runtime = locked(requirements / "dev.txt"), locked(requirements / "runtime.txt")
    assert len(runtime) > 20 and len(dev) > len(runtime)
    assert {name: dev[name] for name in runtime} == runtime
    wanted = dev | locked(requirements / "build.txt")
    installed = {}
    for name in wanted:
        try:
            installed[name] = version(name)
        except PackageNotFoundError:
            installed[name] = "missing"
    assert installed == wanted
