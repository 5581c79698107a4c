from __future__ import annotations

from pathlib import Path

import pytest

from server.settings import SettingsError, load_settings


def load(env: dict[str, str], dotenv: Path | None = None):
    return load_settings(env, dotenv=dotenv)


def test_defaults_follow_the_design_table() -> None:
    settings = load({})
    assert settings.domain == "localhost:8080"
    assert settings.scheme == "https"
    assert settings.data_dir == Path("./data")
    assert settings.effective_database_url.startswith("sqlite+aiosqlite:///")
    assert settings.effective_database_url.endswith("/data/easel.sqlite3")
    assert settings.broker_url == ""
    assert settings.vae_paths == ()
    assert settings.allow_private_addresses is False
    assert settings.registrations == "approval"
    assert settings.ai_uploads == "reject"
    assert settings.rate_limits is True
    assert settings.authorized_fetch is False
    assert (settings.protect_strength, settings.protect_profile, settings.protect_device) == (
        "default", "auto", "auto")
    assert settings.base_url == "https://localhost:8080"
    assert settings.database_pool_size == 20
    assert settings.database_timeout == 30


@pytest.mark.parametrize(("raw", "expected"), [
    ("true", True), ("1", True), ("yes", True), ("on", True), ("ON", True),
    ("false", False), ("0", False), ("no", False), ("off", False), (" Off ", False),
])
def test_booleans_accept_every_documented_spelling(raw: str, expected: bool) -> None:
    assert load({"EASEL_AUTHORIZED_FETCH": raw}).authorized_fetch is expected
    assert load({"EASEL_RATE_LIMITS": raw}).rate_limits is expected


@pytest.mark.parametrize(("env", "message"), [
    ({"EASEL_RATE_LIMITS": "maybe"}, "EASEL_RATE_LIMITS='maybe' is not a boolean"),
    ({"EASEL_SCHEME": "ftp"}, "EASEL_SCHEME='ftp' must be one of: https, http"),
    ({"EASEL_REGISTRATIONS": "sometimes"}, "EASEL_REGISTRATIONS='sometimes' must be one of"),
    ({"EASEL_AI_UPLOADS": "yes"}, "EASEL_AI_UPLOADS='yes' must be one of: reject, label, allow"),
    ({"EASEL_DOMAIN": "https://art.example"}, "EASEL_DOMAIN='https://art.example'"),
    ({"EASEL_DOMAIN": "art.example/path"}, "EASEL_DOMAIN="),
    ({"EASEL_DOMAIN": "art.example:99999"}, "EASEL_DOMAIN="),
    ({"EASEL_DATABASE_URL": "mysql://x"}, "EASEL_DATABASE_URL='mysql://x' is not supported"),
    ({"EASEL_BROKER_URL": "kafka://x"}, "EASEL_BROKER_URL='kafka://x' is not supported"),
    ({"EASEL_VAE_PATH": "/nonexistent/vae"}, "EASEL_VAE_PATH: /nonexistent/vae does not exist"),
    ({"EASEL_PROTECT_STRENGTH": "max"},
     "EASEL_PROTECT_STRENGTH='max' must be one of: low, default, high"),
    ({"EASEL_PROTECT_PROFILE": "gpu"}, "EASEL_PROTECT_PROFILE='gpu' must be one of: auto, default, cpu"),
    ({"EASEL_PROTECT_DEVICE": "mps"}, "EASEL_PROTECT_DEVICE='mps' must be auto, cpu, cuda or cuda:N"),
    ({"EASEL_PROTECT_DEVICE": "cuda:x"}, "EASEL_PROTECT_DEVICE='cuda:x' must be"),
    ({"EASEL_DATABASE_POOL_SIZE": "0"}, "EASEL_DATABASE_POOL_SIZE='0' must be at least 1"),
    ({"EASEL_DATABASE_POOL_SIZE": "many"}, "EASEL_DATABASE_POOL_SIZE='many' is not a whole"),
    ({"EASEL_DATABASE_TIMEOUT": "soon"}, "EASEL_DATABASE_TIMEOUT='soon' is not a number of seconds"),
    ({"EASEL_DATABASE_TIMEOUT": "-1"}, "EASEL_DATABASE_TIMEOUT='-1' must be between 0 and 3600"),
])
def test_bad_values_are_refused_with_a_message_naming_the_variable(
    env: dict[str, str], message: str
) -> None:
    with pytest.raises(SettingsError) as error:
        load(env)
    assert message in str(error.value)


def test_domain_keeps_its_port_and_is_lower_cased() -> None:
    assert load({"EASEL_DOMAIN": "Art.Example:8443"}).domain == "art.example:8443"


def test_plain_postgres_urls_get_the_async_driver() -> None:
    settings = load({"EASEL_DATABASE_URL": "postgresql://u:p@db/easel"})
    assert settings.database_url == "postgresql+asyncpg://u:p@db/easel"
    assert not settings.is_sqlite


def test_vae_paths_are_split_on_the_path_separator(tmp_path: Path) -> None:
    first, second = tmp_path / "sd15", tmp_path / "sdxl.safetensors"
    first.mkdir()
    second.write_bytes(b"")
    settings = load({"EASEL_VAE_PATH": f"{first}:{second}"})
    assert settings.vae_paths == (first, second)


def test_dotenv_is_read_and_the_environment_wins(tmp_path: Path) -> None:
    dotenv = tmp_path / ".env"
    dotenv.write_text(
        "# instance\nEASEL_DOMAIN=art.example\nexport EASEL_TITLE='Art Club'\n"
        'EASEL_REGISTRATIONS="open"\n'
    )
    settings = load({"EASEL_REGISTRATIONS": "closed"}, dotenv=dotenv)
    assert settings.domain == "art.example"
    assert settings.title == "Art Club"
    assert settings.registrations == "closed"


def test_a_malformed_dotenv_line_is_reported_with_its_line_number(tmp_path: Path) -> None:
    dotenv = tmp_path / ".env"
    dotenv.write_text("EASEL_DOMAIN=art.example\nthis is not a setting\n")
    with pytest.raises(SettingsError, match=r"\.env:2: expected NAME=value"):
        load({}, dotenv=dotenv)


def test_unknown_easel_variables_are_kept_aside_for_a_warning() -> None:
    assert load({"EASEL_DOMIAN": "typo.example"}).extra == {"EASEL_DOMIAN": "typo.example"}


@pytest.mark.parametrize(("env", "expected"), [
    ({"EASEL_PROTECT_STRENGTH": " High "}, ("high", "auto", "auto")),
    ({"EASEL_PROTECT_STRENGTH": "low", "EASEL_PROTECT_PROFILE": "cpu"}, ("low", "cpu", "auto")),
    ({"EASEL_PROTECT_PROFILE": "default", "EASEL_PROTECT_DEVICE": "cuda"}, ("default", "default", "cuda")),
    ({"EASEL_PROTECT_DEVICE": "CUDA:1"}, ("default", "auto", "cuda:1")),
    ({"EASEL_PROTECT_DEVICE": "cpu"}, ("default", "auto", "cpu")),
])
def test_protection_settings(env: dict[str, str], expected: tuple[str, str, str]) -> None:
    settings = load(env)
    assert (settings.protect_strength, settings.protect_profile, settings.protect_device) == expected
    assert settings.extra == {}


def test_protection_choices_match_the_perturbation_module() -> None:
    """settings.py repeats the names so the web process need not import torch."""
    pytest.importorskip("torch")
    from protect.perturb import PROFILES, STRENGTHS
    from server.settings import PROTECT_PROFILES, PROTECT_STRENGTHS

    assert set(PROTECT_STRENGTHS) == set(STRENGTHS)
    assert set(PROTECT_PROFILES) == {"auto", *PROFILES}


def test_trusted_proxies_default_to_loopback_and_take_addresses_and_networks() -> None:
    assert load_settings(environ={}, dotenv=None).trusted_proxies == ("127.0.0.1",)
    settings = load_settings(environ={"EASEL_TRUSTED_PROXIES": "10.0.0.2, 172.16.0.0/12"},
                             dotenv=None)
    assert settings.trusted_proxies == ("10.0.0.2", "172.16.0.0/12")
    assert load_settings(environ={"EASEL_TRUSTED_PROXIES": "*"}, dotenv=None).trusted_proxies == ("*",)


@pytest.mark.parametrize("raw", ["", " , ", "proxy.example", "10.0.0.300", "10.0.0.0/40"])
def test_a_bad_trusted_proxy_is_refused_with_the_variable_named(raw: str) -> None:
    with pytest.raises(SettingsError, match="EASEL_TRUSTED_PROXIES"):
        load_settings(environ={"EASEL_TRUSTED_PROXIES": raw}, dotenv=None)


async def test_a_request_through_a_trusted_proxy_network_gets_the_forwarded_client() -> None:
    # What `easel serve` hands uvicorn: its proxy-header middleware with these addresses.
    from uvicorn.middleware.proxy_headers import ProxyHeadersMiddleware

    seen: list[tuple[str, str]] = []

    async def app(scope, receive, send):  # type: ignore[no-untyped-def]
        seen.append((scope["client"][0], scope["scheme"]))

    settings = load_settings(environ={"EASEL_TRUSTED_PROXIES": "172.16.0.0/12"}, dotenv=None)
    middleware = ProxyHeadersMiddleware(app, trusted_hosts=list(settings.trusted_proxies))
    headers = [(b"x-forwarded-for", b"203.0.113.9"), (b"x-forwarded-proto", b"https")]
    for client in ("172.18.0.5", "192.0.2.1"):
        scope = {"type": "http", "scheme": "http", "client": (client, 5000), "headers": headers}
        await middleware(scope, None, None)  # type: ignore[arg-type]
    # The proxy on the compose network is believed; a stranger's header is not.
    assert seen == [("203.0.113.9", "https"), ("192.0.2.1", "http")]


def test_s3_storage_needs_a_bucket_and_takes_urls_without_a_trailing_slash() -> None:
    settings = load_settings(environ={
        "EASEL_STORAGE": "S3", "EASEL_S3_BUCKET": "art", "EASEL_S3_ENDPOINT": "https://s3.example/",
        "EASEL_S3_PUBLIC_URL": "https://cdn.example/media/", "EASEL_S3_SECRET_ACCESS_KEY": "hush",
    }, dotenv=None)
    assert (settings.storage, settings.s3_bucket) == ("s3", "art")
    assert settings.s3_endpoint == "https://s3.example"
    assert settings.s3_public_url == "https://cdn.example/media"
    assert "hush" not in repr(settings) and settings.extra == {}
    assert load_settings(environ={}, dotenv=None).storage == "local"


@pytest.mark.parametrize(("env", "message"), [
    ({"EASEL_STORAGE": "s3"}, "EASEL_STORAGE=s3 needs EASEL_S3_BUCKET"),
    ({"EASEL_STORAGE": "ftp"}, "EASEL_STORAGE='ftp' must be one of: local, s3"),
    ({"EASEL_STORAGE": "s3", "EASEL_S3_BUCKET": "b", "EASEL_S3_ENDPOINT": "s3.example"},
     "EASEL_S3_ENDPOINT='s3.example' must be an http:// or https:// URL"),
    ({"EASEL_S3_PUBLIC_URL": "ftp://cdn"}, "EASEL_S3_PUBLIC_URL='ftp://cdn' must be"),
])
def test_bad_storage_settings_are_refused(env: dict[str, str], message: str) -> None:
    with pytest.raises(SettingsError) as error:
        load_settings(environ=env, dotenv=None)
    assert message in str(error.value)
