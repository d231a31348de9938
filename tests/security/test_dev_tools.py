"""`rls-cds dev-keys` and `rls-cds dev-token`: integrators can drive the real JWT path."""

from __future__ import annotations

import json
import stat

import jwt

from cds_service import cli
from cds_service.app import create_app
from cds_service.settings import Settings
from tests import builders as b
from tests.security.conftest import HOOK_URL, LOCAL, post_hook

ISS = "https://my-ehr.example/dev"


def dev_keys(tmp_path, capsys):
    out = tmp_path / "keys"
    assert cli.main(["dev-keys", "--out", str(out), "--iss", ISS]) == 0
    capsys.readouterr()
    return out


def dev_token(capsys, *args: str) -> str:
    assert cli.main(["dev-token", *args]) == 0
    return capsys.readouterr().out.strip()


class TestDevKeys:
    def test_writes_an_es384_key_a_jwks_with_kid_and_a_clients_file(self, tmp_path, capsys):
        out = dev_keys(tmp_path, capsys)
        assert (out / "private-key.pem").read_text().startswith("-----BEGIN PRIVATE KEY-----")
        assert stat.S_IMODE((out / "private-key.pem").stat().st_mode) == 0o600
        (key,) = json.loads((out / "jwks.json").read_text())["keys"]
        assert (key["kty"], key["crv"], key["alg"], key["use"]) == ("EC", "P-384", "ES384", "sig")
        assert key["kid"] and "d" not in key
        (client,) = json.loads((out / "trusted-clients.json").read_text())
        assert client["iss"] == ISS
        assert client["jwks"]["keys"] == [key]


class TestDevToken:
    def test_token_is_accepted_by_a_service_trusting_the_dev_keys(self, tmp_path, capsys):
        out = dev_keys(tmp_path, capsys)
        clients = out / "trusted-clients.json"
        settings = Settings(data_dir=tmp_path, trusted_clients=clients, public_base_url=LOCAL)
        client = create_app(settings, clock=lambda: b.NOW).test_client()
        token = dev_token(
            capsys, "--key", str(out / "private-key.pem"), "--iss", ISS, "--aud", HOOK_URL
        )
        assert post_hook(client, token).status_code == 200
        assert post_hook(client, token).status_code == 401  # jti is random and used up

    def test_token_carries_the_cds_hooks_header_and_claims(self, tmp_path, capsys):
        out = dev_keys(tmp_path, capsys)
        kid = json.loads((out / "jwks.json").read_text())["keys"][0]["kid"]
        key = str(out / "private-key.pem")
        token = dev_token(capsys, "--key", key, "--iss", ISS, "--aud", HOOK_URL, "--ttl", "60")
        header = jwt.get_unverified_header(token)
        claims = jwt.decode(token, options={"verify_signature": False})
        assert (header["alg"], header["typ"], header["kid"]) == ("ES384", "JWT", kid)
        assert (claims["iss"], claims["aud"], claims["exp"] - claims["iat"]) == (ISS, HOOK_URL, 60)
        assert len(claims["jti"]) >= 32
        other = dev_token(capsys, "--key", key, "--iss", ISS, "--aud", HOOK_URL, "--kid", "mine")
        assert jwt.get_unverified_header(other)["kid"] == "mine"

    def test_an_rsa_key_signs_rs384(self, tmp_path, capsys, rs384):
        from cryptography.hazmat.primitives import serialization

        path = tmp_path / "rsa.pem"
        path.write_bytes(
            rs384.key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )
        token = dev_token(capsys, "--key", str(path), "--iss", ISS, "--aud", HOOK_URL)
        assert jwt.get_unverified_header(token)["alg"] == "RS384"

    def test_unreadable_key_is_one_line_and_exit_2(self, tmp_path, capsys):
        path = tmp_path / "not-a-key.pem"
        path.write_text("hello")
        assert cli.main(["dev-token", "--key", str(path), "--iss", ISS, "--aud", HOOK_URL]) == 2
        assert "not a usable private key" in capsys.readouterr().err
        missing = str(tmp_path / "missing.pem")
        assert cli.main(["dev-token", "--key", missing, "--iss", ISS, "--aud", HOOK_URL]) == 2
