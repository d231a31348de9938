"""The fhirServer allow-list matches scheme, host, port and whole path segments."""

from __future__ import annotations

import pytest

from cds_service.fhir.guard import is_allowed

PREFIXES = ("https://ehr.example/fhir", "http://127.0.0.1:*")


@pytest.mark.parametrize(
    "url",
    [
        "https://ehr.example/fhir",
        "https://ehr.example/fhir/",
        "https://ehr.example/fhir/R4",
        "https://EHR.example:443/fhir/R4",
        "http://127.0.0.1:8081/fhir",
    ],
)
def test_urls_under_an_allowed_prefix_pass(url):
    assert is_allowed(url, PREFIXES)


@pytest.mark.parametrize(
    "url",
    [
        "https://ehr.example/fhirish",
        "https://ehr.example/other",
        "http://ehr.example/fhir",
        "https://ehr.example:8443/fhir",
        "https://ehr.example.evil.test/fhir",
        "https://user:pw@ehr.example/fhir",
        "http://127.0.0.1.evil.test/fhir",
        "https://127.0.0.1/fhir",
        "file:///etc/passwd",
        "gopher://127.0.0.1/",
        "https://[::1/fhir",
        "not a url",
    ],
)
def test_everything_else_is_refused(url):
    assert not is_allowed(url, PREFIXES)


def test_empty_allow_list_refuses_all():
    assert not is_allowed("https://ehr.example/fhir", ())


def test_a_prefix_without_port_means_the_default_port():
    assert is_allowed("http://10.0.0.1/fhir", ("http://10.0.0.1",))
    assert not is_allowed("http://10.0.0.1:8080/fhir", ("http://10.0.0.1",))
