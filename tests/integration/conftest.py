"""Integration fixtures: one real FHIR server (Medplum sandbox) shared by every module, and a
FHIR server faked with `responses` for the tests that fetch from an EHR."""

import pytest
import responses

from cds_service.app import create_app
from cds_service.settings import Settings
from tests import builders as b
from tests.fake_fhir import FHIR
from tests.integration.fhir_sandbox import fhir_server  # noqa: F401


@pytest.fixture
def fhir():
    """The faked EHR FHIR server (see tests/fake_fhir.serve_record)."""
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        yield mock


@pytest.fixture
def fetching_client(tmp_path):
    """A demo app allowed to fetch from the faked EHR, with a 1.5 s hook deadline."""
    settings = Settings(
        demo=True, data_dir=tmp_path, fhir_server_allowlist=FHIR, hook_deadline_s=1.5
    )
    return create_app(settings, clock=lambda: b.NOW).test_client()
