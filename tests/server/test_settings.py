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


@pytest.mark.parametrize(("url", "package", "extra"), [
    ("amqp://guest:guest@rabbit:5672/", "pika", "rabbitmq"),
    ("amqps://guest:guest@rabbit:5671/", "pika", "rabbitmq"),
    ("redis://127.0.0.1:6379/0", "redis", "redis"),
])
def test_a_broker_url_needs_its_client_installed(
    monkeypatch: pytest.MonkeyPatch, url: str, package: str, extra: str
) -> None:
    import importlib.util

    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == package else real_find_spec(name, *a))
    with pytest.raises(SettingsError) as error:
        load({"EASEL_BROKER_URL": url})
    scheme = url.partition("://")[0]
    assert str(error.value) == (f"EASEL_BROKER_URL={scheme}://… needs the {package} package: "
                                f"pip install 'easel[{extra}]'")
    assert "guest" not in str(error.value)
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: object())
    assert load({"EASEL_BROKER_URL": url}).broker_url == url


def test_a_postgresql_url_needs_asyncpg_installed(monkeypatch: pytest.MonkeyPatch) -> None:
    import importlib.util

    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "asyncpg" else real_find_spec(name, *a))
    with pytest.raises(SettingsError, match=r"needs the asyncpg package: pip install 'easel\[postgres\]'"):
        load({"EASEL_DATABASE_URL": "postgresql://u:p@db/easel"})


def test_an_amqp_broker_is_refused_where_pika_is_not_installed() -> None:
    """What a worker would otherwise meet when it starts (ModuleNotFoundError)."""
    try:
        import pika  # noqa: F401
    except ModuleNotFoundError:
        with pytest.raises(SettingsError, match=r"needs the pika package: pip install 'easel\[rabbitmq\]'"):
            load({"EASEL_BROKER_URL": "amqp://guest:guest@localhost:5672/"})
    else:
        from dramatiq.brokers.rabbitmq import RabbitmqBroker  # what make_broker imports

        assert RabbitmqBroker
        assert load({"EASEL_BROKER_URL": "amqp://guest@localhost/"}).broker_url == "amqp://guest@localhost/"


def test_domain_keeps_its_port_and_is_lower_cased() -> None:
    assert load({"EASEL_DOMAIN": "Art.Example:8443"}).domain == "art.example:8443"


def test_plain_postgres_urls_get_the_async_driver() -> None:
    settings = load({"EASEL_DATABASE_URL": "postgresql://u:p@db/easel"})
    assert settings.database_url == "postgresql+asyncpg://u:p@db/easel"
    assert not settings.is_sqlite


@pytest.mark.parametrize(("raw", "expected"), [
    # What managed PostgreSQL providers hand out: libpq's sslmode becomes asyncpg's ssl.
    ("postgresql://u:p@db.example/easel?sslmode=require",
     "postgresql+asyncpg://u:p@db.example/easel?ssl=require"),
    ("postgres://u:p@db.example:25060/easel?sslmode=verify-full&target_session_attrs=read-write",
     "postgresql+asyncpg://u:p@db.example:25060/easel?ssl=verify-full&target_session_attrs=read-write"),
    ("postgresql+asyncpg://u@db/easel?ssl=prefer", "postgresql+asyncpg://u@db/easel?ssl=prefer"),
    ("postgresql://u@db/easel?sslmode=DISABLE", "postgresql+asyncpg://u@db/easel?ssl=disable"),
])
def test_libpq_ssl_modes_become_asyncpg_ones(raw: str, expected: str) -> None:
    assert load({"EASEL_DATABASE_URL": raw}).database_url == expected


@pytest.mark.parametrize("mode", ["disable", "allow", "prefer", "require", "verify-ca", "verify-full"])
def test_a_database_url_with_sslmode_is_one_asyncpg_connect_takes(mode: str) -> None:
    # SQLAlchemy hands the URL's query to asyncpg.connect() as keyword arguments: sslmode
    # was one it does not take (TypeError on every command).
    import inspect

    import asyncpg
    from sqlalchemy.dialects.postgresql.asyncpg import dialect
    from sqlalchemy.engine import make_url

    url = load({"EASEL_DATABASE_URL": f"postgresql://u:p@db/easel?sslmode={mode}"}).database_url
    args, kwargs = dialect().create_connect_args(make_url(url))
    inspect.signature(asyncpg.connect).bind(*args, **kwargs)
    assert kwargs["ssl"] == mode


@pytest.mark.parametrize(("query", "message"), [
    ("sslmode=sometimes", "sslmode='sometimes' must be one of: disable, allow, prefer, require, "
                          "verify-ca, verify-full"),
    ("ssl=true", "ssl='true' must be one of"),
    ("sslmode=require&ssl=require", "give sslmode or ssl, not both"),
    ("sslmode=verify-full&sslrootcert=/etc/ca.pem", "set PGSSLROOTCERT=/etc/ca.pem"),
    ("sslcert=/c.pem", "set PGSSLCERT=/c.pem"),
    ("sslkey=/k.pem", "set PGSSLKEY=/k.pem"),
    ("connect_timeout=10", "EASEL_DATABASE_TIMEOUT"),
    ("application_name=easel", "asyncpg does not take 'application_name' in the URL; it takes: "
                                "sslmode (or ssl), host"),
])
def test_libpq_parameters_asyncpg_cannot_take_are_refused_with_a_way_out(
    query: str, message: str
) -> None:
    with pytest.raises(SettingsError) as error:
        load({"EASEL_DATABASE_URL": f"postgresql://u:p@db/easel?{query}"})
    assert "EASEL_DATABASE_URL" in str(error.value)
    assert message in str(error.value)
    assert ":p@" not in str(error.value)  # the password is not printed


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


@pytest.mark.parametrize(("raw", "expected"), [
    # A network written with its host bits set is the network: uvicorn reads networks
    # strictly and would keep "172.18.0.1/16" as a literal string that matches no client.
    ("172.18.0.1/16", ("172.18.0.0/16",)),
    ("10.0.0.2, 2001:db8::1/64", ("10.0.0.2", "2001:db8::/64")),
    ("192.168.1.7/255.255.255.0", ("192.168.1.0/24",)),
    # uvicorn trusts everyone only for a lone "*".
    ("*, 10.0.0.2", ("*",)),
])
def test_trusted_proxy_networks_are_normalised_for_uvicorn(
    raw: str, expected: tuple[str, ...]
) -> None:
    assert load_settings(environ={"EASEL_TRUSTED_PROXIES": raw}, dotenv=None).trusted_proxies == expected


@pytest.mark.parametrize("raw", ["172.18.0.1/16", "*, 10.0.0.1"])
async def test_a_client_behind_a_proxy_given_with_host_bits_gets_its_own_address(raw: str) -> None:
    # The way `easel serve` hands the setting to uvicorn (server/commands.py: serve), and
    # the app uvicorn then runs: its proxy-header middleware around Easel's.
    import uvicorn

    seen: list[tuple[str, str]] = []

    async def app(scope, receive, send):  # type: ignore[no-untyped-def]
        seen.append((scope["client"][0], scope["scheme"]))

    settings = load_settings(environ={"EASEL_TRUSTED_PROXIES": raw}, dotenv=None)
    config = uvicorn.Config(app, proxy_headers=True, forwarded_allow_ips=list(settings.trusted_proxies),
                            log_config=None)
    config.load()
    headers = [(b"x-forwarded-for", b"203.0.113.9"), (b"x-forwarded-proto", b"https")]
    scope = {"type": "http", "scheme": "http", "client": ("172.18.0.1", 5000), "headers": headers}
    await config.loaded_app(scope, None, None)
    # Not the proxy's address (one rate-limit bucket for everyone) nor its plain http.
    assert seen == [("203.0.113.9", "https")]


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


@pytest.mark.parametrize("mode", ["disable", "prefer"])
async def test_a_postgresql_url_with_sslmode_connects(mode: str) -> None:
    """A real connection (the test server speaks no TLS: prefer falls back to plain)."""
    from tests.conftest import TEST_DATABASE_URL

    if not TEST_DATABASE_URL.startswith("postgresql"):
        pytest.skip("needs EASEL_TEST_DATABASE_URL (PostgreSQL)")
    from server.db import Database

    plain = TEST_DATABASE_URL.replace("postgresql+asyncpg://", "postgresql://", 1)
    settings = load({"EASEL_DATABASE_URL": f"{plain}?sslmode={mode}"})
    database = Database.from_settings(settings)
    try:
        await database.ping()
    finally:
        await database.dispose()
