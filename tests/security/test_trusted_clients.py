"""The trusted-clients file: validated at start-up, each problem named with its entry."""

from __future__ import annotations

import json

import pytest

from cds_service import cli
from cds_service.app import create_app
from cds_service.auth.clients import TrustedClientsInvalid, parse_trusted_clients
from cds_service.settings import Settings
from tests.security.conftest import FHIR, ISS, LOCAL, post_hook

URL = "https://ehr.example.org/jwks.json"


def entry(**fields) -> dict:
    return {"iss": ISS, "jwks_url": URL, "fhir_servers": [FHIR]} | fields


class TestValidEntries:
    def test_minimal_entry_with_jwks_url(self):
        (client,) = parse_trusted_clients([entry()]).values()
        assert (client.iss, client.jwks_url, client.fhir_servers) == (ISS, URL, (FHIR,))

    def test_fhir_server_prefixes_lose_their_trailing_slash(self):
        clients = parse_trusted_clients([entry(fhir_servers=[FHIR + "/"])])
        assert clients[ISS].fhir_servers == (FHIR,)

    def test_loopback_http_key_urls_are_allowed_for_local_testing(self):
        parse_trusted_clients([entry(jwks_url="http://127.0.0.1:9000/jwks.json")])

    def test_issuer_and_tenant_at_the_store_columns_width(self):
        iss = "https://ehr.example/" + "i" * 235
        (client,) = parse_trusted_clients([entry(iss=iss, tenant="t" * 255)]).values()
        assert (len(client.iss), len(client.tenant or "")) == (255, 255)

    def test_union_of_every_clients_fhir_servers(self):
        other = entry(iss="https://b.example", fhir_servers=["https://b.example/fhir", FHIR])
        assert parse_trusted_clients([entry(), other]).fhir_servers == (
            FHIR,
            "https://b.example/fhir",
        )


class TestInvalidEntries:
    @pytest.mark.parametrize(
        ("data", "fragments"),
        [
            ({"iss": ISS}, ["JSON list"]),
            ([], ["lists no clients"]),
            ([{"jwks_url": URL}], ["entry 0", "iss", "Field required"]),
            ([entry(), entry(iss="")], ["entry 1", "iss"]),
            ([entry(jwks={"keys": []})], ["entry 0 (iss", "exactly one of jwks_url or jwks"]),
            ([{"iss": ISS}], ["exactly one of jwks_url or jwks"]),
            ([entry(jwks_url="http://ehr.example.org/jwks")], ["jwks_url", "https"]),
            ([entry(jku_allowlist=["ftp://x"])], ["jku_allowlist", "https"]),
            ([entry(fhir_servers=["file:///etc"])], ["fhir_servers", "http(s)"]),
            ([entry(jwks_uri=URL)], ["jwks_uri", "Extra inputs"]),
            ([entry(), entry()], ["entry 1", "repeats"]),
            (["not an object"], ["entry 0"]),
            # what no column of the store could hold (issue 17): 255 characters, no NUL
            ([entry(iss="https://ehr.example/" + "i" * 236)], ["entry 0", "iss", "255"]),
            ([entry(iss="https://ehr.example/\x00")], ["entry 0", "iss", "NUL"]),
            ([entry(tenant="t" * 256)], ["entry 0", "tenant", "255"]),
            ([entry(tenant="t\x00")], ["entry 0", "tenant", "NUL"]),
        ],
    )
    def test_problem_is_named(self, data, fragments):
        with pytest.raises(TrustedClientsInvalid) as caught:
            parse_trusted_clients(data, "clients.json")
        message = str(caught.value)
        assert message.startswith("clients.json: ")
        for fragment in fragments:
            assert fragment in message

    def test_inline_private_key_is_refused(self, es384):
        private = {**es384.jwk(), "d": "AAAA"}
        data = [{"iss": ISS, "jwks": {"keys": [private]}}]
        with pytest.raises(TrustedClientsInvalid, match="key 0: holds private"):
            parse_trusted_clients(data)

    def test_inline_set_without_keys_list_is_refused(self):
        with pytest.raises(TrustedClientsInvalid, match='"keys" list'):
            parse_trusted_clients([{"iss": ISS, "jwks": {"key": []}}])


class TestStartUp:
    def test_app_refuses_to_start_with_a_bad_file(self, tmp_path):
        path = tmp_path / "clients.json"
        path.write_text("[{", "utf-8")
        with pytest.raises(TrustedClientsInvalid, match="not valid JSON"):
            create_app(Settings(data_dir=tmp_path, trusted_clients=path, public_base_url=LOCAL))

    def test_app_refuses_to_start_with_a_missing_file(self, tmp_path):
        with pytest.raises(TrustedClientsInvalid, match="cannot be read"):
            missing = tmp_path / "nope.json"
            create_app(Settings(data_dir=tmp_path, trusted_clients=missing, public_base_url=LOCAL))

    def test_serve_prints_the_problem_and_exits_2(self, tmp_path, monkeypatch, capsys):
        path = tmp_path / "clients.json"
        path.write_text(json.dumps([{"iss": ISS}]), "utf-8")
        monkeypatch.setenv("RLS_CDS_TRUSTED_CLIENTS", str(path))
        monkeypatch.setenv("RLS_CDS_DATA_DIR", str(tmp_path))
        monkeypatch.setenv("RLS_CDS_PUBLIC_BASE_URL", LOCAL)
        assert cli.main(["serve", "--port", "1"]) == 2
        error = capsys.readouterr().err
        assert "RLS_CDS_TRUSTED_CLIENTS" in error
        assert "exactly one of jwks_url or jwks" in error

    def test_production_default_without_a_file_refuses_every_call(self, tmp_path, es384):
        client = create_app(Settings(data_dir=tmp_path, public_base_url=LOCAL)).test_client()
        response = post_hook(client, es384.token())
        assert response.status_code == 401

    def test_demo_mode_stays_open_and_says_so(self, tmp_path):
        client = create_app(Settings(data_dir=tmp_path, demo=True)).test_client()
        assert post_hook(client, None).status_code == 200
        descriptions = [s["description"] for s in client.get("/cds-services").json["services"]]
        assert all("DEMO MODE" in d for d in descriptions)

    def test_demo_mode_does_not_read_the_clients_file(self, tmp_path):
        """`rls-cds evaluate` (demo, in-process) works whatever the environment names."""
        settings = Settings(data_dir=tmp_path, demo=True, trusted_clients=tmp_path / "nope")
        assert post_hook(create_app(settings).test_client(), None).status_code == 200
