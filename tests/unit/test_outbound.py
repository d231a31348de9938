"""The URL discipline: what is checked is what requests sends, and allow-lists match scheme,
host, port and whole path segments of that."""

from __future__ import annotations

import pytest
import requests
import responses

from cds_service.outbound import AllowList, UrlRefused, canonical, join, prepared_get

PREFIXES = AllowList.of(["https://ehr.example/fhir", "http://127.0.0.1:*"])


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
    assert PREFIXES.allows(url)


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
        "https://ehr.example/fhir/../other",
        "https://ehr.example/fhir/%2e%2e/other",
    ],
)
def test_everything_else_is_refused(url):
    assert not PREFIXES.allows(url)


def test_empty_allow_list_refuses_all():
    assert not AllowList().allows("https://ehr.example/fhir")


def test_a_prefix_without_port_means_the_default_port():
    assert AllowList.of(["http://10.0.0.1"]).allows("http://10.0.0.1/fhir")
    assert not AllowList.of(["http://10.0.0.1"]).allows("http://10.0.0.1:8080/fhir")


@pytest.mark.parametrize(
    ("url", "sent"),
    [
        ("https://EHR.example/fhir", "https://ehr.example/fhir"),
        ("https://ehr.example", "https://ehr.example/"),
        ("https://ehr.example/fhir/%41", "https://ehr.example/fhir/A"),
    ],
)
def test_canonical_is_what_requests_sends(url, sent):
    assert canonical(url) == sent
    prepared = requests.Request("GET", url).prepare()
    assert prepared.url == sent


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("https://ehr.example/a/../b", "dot segment"),
        ("https://ehr.example/a/./b", "dot segment"),
        ("https://ehr.example/a/%2e%2E/b", "dot segment"),
        ("https://ehr.example/a/%252e%252e/b", "dot segment"),
        ("https://ehr.example/a/..;x/b", "dot segment"),
        ("https://ehr.example/a/..%2fb", "encoded slash"),
        ("https://ehr.example/a/..%5Cb", "encoded slash"),
        ("https://ehr.example/a/%252fb", "encoded slash"),
        ("https://ehr.example/a\\b", "backslash"),
        ("https://ehr.example/a%00b", "control"),
        ("https://ehr.example/a\tb", "control"),
        ("https://ehr.example/a b", "spaces"),
        ("https://ehr.example/é", "non-ASCII"),
        ("https://ehr.example/a#b", "fragment"),
        ("https://ehr.example/a?b", "query"),
        ("https://u@ehr.example/a", "credentials"),
        ("https://ehr.example/a%zz", "percent escape"),
        ("https://ehr.example/a%4", "percent escape"),
        ("https://ehr.example//a", "empty segment"),
        ("ftp://ehr.example/a", "http"),
        ("//ehr.example/a", "http"),
        ("", "string"),
    ],
)
def test_refusals_name_the_rule_and_never_the_url(url, reason):
    with pytest.raises(UrlRefused, match=reason) as refused:
        canonical(url)
    assert "ehr.example" not in str(refused.value)


def test_a_query_where_allowed_is_kept():
    assert canonical("https://ehr.example/fhir/Observation?code=a|b", query=True) == (
        "https://ehr.example/fhir/Observation?code=a%7Cb"
    )


@pytest.mark.parametrize(
    ("link", "expected"),
    [
        ("Observation?page=2", "https://ehr.example/fhir/Observation?page=2"),
        ("/fhir/Observation?page=2", "https://ehr.example/fhir/Observation?page=2"),
        ("https://ehr.example/fhir/x?page=2", "https://ehr.example/fhir/x?page=2"),
    ],
)
def test_links_resolve_against_the_page(link, expected):
    assert join("https://ehr.example/fhir/Observation?x=1", link) == expected


@pytest.mark.parametrize(
    "link", ["../../b/Observation", "./x", "a/%2e%2e/b", "//evil.example/x", "a\\b", "x#y", 7]
)
def test_links_with_dot_segments_or_tricks_are_refused_before_resolving(link):
    with pytest.raises(UrlRefused):
        join("https://ehr.example/fhir/Observation", link)


@responses.activate
def test_prepared_get_sends_exactly_the_canonical_url():
    url = canonical("https://ehr.example/fhir/Observation?code=a|b", query=True)
    responses.get(url, json={})
    prepared_get(requests.Session(), url)
    assert responses.calls[0].request.url == url


def test_prepared_get_refuses_a_url_requests_would_change():
    with pytest.raises(UrlRefused):
        prepared_get(requests.Session(), "https://ehr.example/a/../b")
