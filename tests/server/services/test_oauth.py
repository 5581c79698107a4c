"""The OAuth service and the signing key, below HTTP: PKCE, redirect URIs, codes, secrets."""

from __future__ import annotations

import base64
import hashlib
import stat
from pathlib import Path

import pytest
from sqlalchemy import select

from server.db import Database
from server.models import OAuthAuthorizationCode, User
from server.secrets import KEY_FILE_NAME, keyed_digest, secret_key, sign, unsign
from server.services import oauth
from server.services.errors import ValidationFailed
from server.settings import Settings, SettingsError, load_settings


def test_s256_is_the_unpadded_base64url_sha256_of_the_verifier() -> None:
    verifier = "a-verifier_of.enough~length-" + "x" * 20
    expected = base64.b64encode(hashlib.sha256(verifier.encode()).digest()).decode()
    expected = expected.replace("+", "-").replace("/", "_").rstrip("=")
    challenge = oauth.s256_challenge(verifier)
    assert challenge == expected and len(challenge) == 43
    assert oauth.S256_CHALLENGE_RE.match(challenge)


@pytest.mark.parametrize("uri", ["urn:ietf:wg:oauth:2.0:oob", "https://app.example/cb?x=1",
                                 "http://localhost:4000/cb", "myapp://oauth", "com.example.app:/oauth"])
def test_redirect_uris_apps_use_are_accepted(uri: str) -> None:
    assert oauth.validate_redirect_uri(uri) == uri


@pytest.mark.parametrize("uri", ["cb", "/cb", "https://a.example/#x", "https://a.example/#",
                                 "javascript:alert(1)", "data:text/html,x", "https://a b.example/",
                                 "https://", "https:///path"])
def test_bad_redirect_uris_are_refused(uri: str) -> None:
    with pytest.raises(ValidationFailed):
        oauth.validate_redirect_uri(uri)


def test_redirect_uris_are_split_and_deduplicated() -> None:
    assert oauth.split_redirect_uris(["a:/1\nb:/2 a:/1", "c:/3"]) == ["a:/1", "b:/2", "c:/3"]


def test_requested_scopes_must_be_within_the_apps() -> None:
    assert oauth.requested_scopes(None, ["read", "write"]) == ["read"]
    assert oauth.requested_scopes("read:statuses write:media", ["read", "write"]) == [
        "read:statuses", "write:media"]
    for raw, allowed in (("write", ["read"]), ("nonsense", ["read"]), (None, ["write"])):
        with pytest.raises(oauth.OAuthError) as error:
            oauth.requested_scopes(raw, allowed)
        assert error.value.error == "invalid_scope" and error.value.status_code == 400


def test_oauth_errors_carry_doorkeepers_status_and_text() -> None:
    assert oauth.OAuthError("invalid_client").status_code == 401
    assert oauth.OAuthError("invalid_grant").to_json()["error_description"].startswith(
        "The provided authorization grant is invalid")


async def test_a_code_is_single_use_and_stored_as_a_digest(db: Database, alice: User) -> None:
    async with db.session() as session:
        app = await oauth.create_application(session, name="App", redirect_uris=["https://a.example/cb"],
                                             scopes="read", website=None)
        request = await oauth.check_authorization_request(session, {
            "client_id": app.client_id, "redirect_uri": "https://a.example/cb", "response_type": "code"})
        code = await oauth.issue_authorization_code(session, request, alice)
    async with db.session() as session:
        stored = await session.scalar(select(OAuthAuthorizationCode))
        assert stored is not None and stored.code_digest != code and code not in stored.code_digest
        assert (stored.expires_at - stored.created_at).total_seconds() == 600
        issued = await oauth.grant_authorization_code(
            session, app, code=code, redirect_uri="https://a.example/cb", code_verifier=None)
        assert issued.scopes == ["read"] and issued.refresh_token
    async with db.session() as session:
        with pytest.raises(oauth.OAuthError):
            await oauth.grant_authorization_code(
                session, app, code=code, redirect_uri="https://a.example/cb", code_verifier=None)


# --------------------------------------------------------------------------- the secret key

def test_a_key_file_is_created_once_with_0600(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path / "fresh")
    key = secret_key(settings)
    path = tmp_path / "fresh" / KEY_FILE_NAME
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert len(key) >= 32 and key == secret_key(Settings(data_dir=tmp_path / "fresh"))
    assert path.read_text().strip().encode() == key


def test_the_configured_key_wins(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path, secret_key="k" * 40)
    assert secret_key(settings) == b"k" * 40
    assert not (tmp_path / KEY_FILE_NAME).exists()


def test_secret_key_setting_is_known_checked_and_never_shown() -> None:
    settings = load_settings({"EASEL_SECRET_KEY": "s" * 32}, dotenv=None)
    assert settings.secret_key == "s" * 32 and "EASEL_SECRET_KEY" not in settings.extra
    assert "s" * 32 not in repr(settings)
    with pytest.raises(SettingsError, match="EASEL_SECRET_KEY is too short"):
        load_settings({"EASEL_SECRET_KEY": "short"}, dotenv=None)


def test_signed_values_check_purpose_age_and_integrity() -> None:
    key = b"x" * 32
    value = sign(key, "login", "42:abc", now=1000)
    assert unsign(key, "login", value, max_age=60, now=1030) == "42:abc"
    assert unsign(key, "csrf", value, max_age=60, now=1030) is None
    assert unsign(key, "login", value, max_age=60, now=1100) is None
    assert unsign(b"y" * 32, "login", value, max_age=60, now=1030) is None
    tampered = value.replace("42", "43", 1)
    assert unsign(key, "login", tampered, max_age=60, now=1030) is None
    assert unsign(key, "login", "garbage", max_age=60) is None
    assert keyed_digest(key, "csrf", "a") != keyed_digest(key, "other", "a")
