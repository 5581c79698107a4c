"""Instance settings, read once from ``EASEL_*`` environment variables and ``.env``.

Every setting is validated when the process starts, so a typo stops ``easel serve`` with a
message naming the variable instead of surfacing later as a strange failure. This module
must never read the environment anywhere but in :func:`load_settings`; everything else gets
a :class:`Settings` passed in.
"""

from __future__ import annotations

import ipaddress
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

TRUE_WORDS = {"true", "1", "yes", "on"}
FALSE_WORDS = {"false", "0", "no", "off"}

REGISTRATION_MODES = ("open", "approval", "closed")
AI_UPLOAD_POLICIES = ("reject", "label", "allow")
# Protection (protect/perturb.py has the same names: STRENGTHS, PROFILES; this module stays
# torch-free, so they are repeated here and a test keeps them in step).
PROTECT_STRENGTHS = ("low", "default", "high")
PROTECT_PROFILES = ("auto", "default", "cpu")

_DEVICE_RE = re.compile(r"^(?:auto|cpu|cuda(?::[0-9]{1,3})?)$")
_DOMAIN_RE = re.compile(
    r"^(?:[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)*[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?"
    r"(?::(?P<port>[0-9]{1,5}))?$"
)


class SettingsError(ValueError):
    """A setting has a value Easel cannot run with; the message names the variable."""


@dataclass(frozen=True)
class Settings:
    domain: str = "localhost:8080"
    scheme: str = "https"
    data_dir: Path = Path("./data")
    database_url: str = ""
    broker_url: str = ""
    vae_paths: tuple[Path, ...] = ()
    # How hard the protect worker perturbs (low, default, high), with which compute profile
    # (auto: "default" on a GPU, the lighter "cpu" otherwise) and on which torch device.
    protect_strength: str = "default"
    protect_profile: str = "auto"
    protect_device: str = "auto"
    allow_private_addresses: bool = False
    registrations: str = "approval"
    ai_uploads: str = "reject"
    rate_limits: bool = True
    # Client API requests per access token (or address) per 5 minutes.
    api_rate_limit: int = 300
    # New statuses and boosts per access token per 3 hours; uploads per token per 30
    # minutes; account creations per address per 30 minutes; inbox deliveries per remote
    # address per 5 minutes (Mastodon's figures, and a generous one for the inboxes).
    status_rate_limit: int = 300
    media_rate_limit: int = 30
    sign_up_rate_limit: int = 5
    inbox_rate_limit: int = 3000
    # How long anonymous public/hashtag timeline responses are reused (0: never).
    public_cache_seconds: float = 1.0
    # PostgreSQL connections each process keeps open (half as many again are opened, and
    # closed, for bursts beyond that).
    database_pool_size: int = 20
    # PostgreSQL: the longest one statement, one connection attempt or one wait for a pooled
    # connection may take before the request is answered 503 (0: no limit).
    database_timeout: float = 30.0
    authorized_fetch: bool = False
    # Addresses (or CIDR networks) of the reverse proxies whose X-Forwarded-For/-Proto
    # uvicorn believes; everything else is the client itself.
    trusted_proxies: tuple[str, ...] = ("127.0.0.1",)
    # Media storage: "local" (EASEL_DATA_DIR/media) or "s3" (an S3-compatible bucket).
    storage: str = "local"
    s3_bucket: str = ""
    s3_endpoint: str = ""
    s3_region: str = ""
    s3_access_key_id: str = field(default="", repr=False)
    s3_secret_access_key: str = field(default="", repr=False)
    s3_public_url: str = ""
    # The remote media cache: the most its files may take (MB; 0: remote media are not
    # cached, only referenced) and how long a cached file is kept (days; 0: no age limit).
    remote_media_cache_mb: int = 0
    remote_media_retention_days: int = 0
    # Link preview cards: a status's first link fetched (federation.link_cards) and shown
    # as its card; off: nothing is fetched and no card is shown.
    link_cards: bool = True
    # How long the addresses a login was used from are kept after their last use (days;
    # 0: none is recorded). Moderators see them and look accounts up by them.
    ip_retention_days: int = 365
    # Outgoing mail (confirmation, password reset): none is sent while smtp_host is empty.
    smtp_host: str = ""
    smtp_port: int = 587
    smtp_user: str = ""
    smtp_password: str = field(default="", repr=False)
    smtp_from: str = ""
    smtp_security: str = "starttls"
    # Days a self-service account deletion waits (cancellable) before its data are purged.
    account_deletion_grace_days: int = 30
    # open: federate with every domain not blocked; allowlist: only with domain_allows.
    federation_mode: str = "open"
    # Who sees GET /api/v1/instance/domain_blocks: disabled, users (signed in) or all.
    show_domain_blocks: str = "disabled"
    # Observability: log lines as text or JSON (each with its request id); the Prometheus
    # /metrics endpoint (off by default), readable with this bearer token, or else only
    # from loopback addresses.
    log_format: str = "text"
    metrics: bool = False
    metrics_token: str = field(default="", repr=False)
    title: str = "Easel"
    # Signs login cookies and CSRF tokens; empty: a random key kept in the data dir.
    secret_key: str = field(default="", repr=False)
    extra: Mapping[str, str] = field(default_factory=dict)

    @property
    def base_url(self) -> str:
        return f"{self.scheme}://{self.domain}"

    @property
    def mail_enabled(self) -> bool:
        """Whether e-mail is sent (and so sign-ups must confirm their address)."""
        return bool(self.smtp_host)

    @property
    def effective_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite+aiosqlite:///{(self.data_dir / 'easel.sqlite3').resolve()}"

    @property
    def is_sqlite(self) -> bool:
        return self.effective_database_url.startswith("sqlite")

    def with_changes(self, **changes: Any) -> Settings:
        return replace(self, **changes)


def parse_bool(name: str, raw: str) -> bool:
    word = raw.strip().lower()
    if word in TRUE_WORDS:
        return True
    if word in FALSE_WORDS:
        return False
    raise SettingsError(f"{name}={raw!r} is not a boolean: use true/false, 1/0, yes/no or on/off")


FEDERATION_MODES = ("open", "allowlist")
SHOW_DOMAIN_BLOCKS = ("disabled", "users", "all")


def _choice(name: str, raw: str, choices: tuple[str, ...]) -> str:
    value = raw.strip().lower()
    if value not in choices:
        raise SettingsError(f"{name}={raw!r} must be one of: {', '.join(choices)}")
    return value


def _domain(raw: str) -> str:
    value = raw.strip().lower()
    match = _DOMAIN_RE.match(value)
    if not match or (match.group("port") and not 0 < int(match.group("port")) < 65536):
        raise SettingsError(
            f"EASEL_DOMAIN={raw!r} must be a host name with an optional port, "
            "like 'art.example' or 'localhost:8080' (no scheme, no path)"
        )
    return value


def _installed(module: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(module) is not None


def _database_url(raw: str) -> str:
    value = raw.strip()
    if not value:
        return ""
    for plain, driver in (("postgresql://", "postgresql+asyncpg://"),
                          ("postgres://", "postgresql+asyncpg://")):
        if value.startswith(plain):
            value = driver + value[len(plain):]
    if not value.startswith(("sqlite+aiosqlite://", "postgresql+asyncpg://")):
        raise SettingsError(
            f"EASEL_DATABASE_URL={raw!r} is not supported: use postgresql://… "
            "(or postgresql+asyncpg://…) or sqlite+aiosqlite:///path"
        )
    if value.startswith("postgresql+asyncpg://"):
        if not _installed("asyncpg"):
            raise SettingsError("EASEL_DATABASE_URL=postgresql://… needs the asyncpg package: "
                                "pip install 'easel[postgres]'")
        if "?" in value:
            base, _, query = value.partition("?")
            value = f"{base}?{_asyncpg_query(query)}"
    return value


# libpq's sslmode values; asyncpg takes the same ones as ``ssl``.
SSL_MODES = ("disable", "allow", "prefer", "require", "verify-ca", "verify-full")
# The URL's query parameters SQLAlchemy hands asyncpg.connect() (as keyword arguments, so
# any other is a TypeError when connecting) that make sense as text: asyncpg's own, and
# SQLAlchemy's host/port (several hosts) and prepared statement cache size.
ASYNCPG_URL_PARAMETERS = ("ssl", "host", "port", "passfile", "target_session_attrs",
                          "krbsrvname", "gsslib", "prepared_statement_cache_size")
# libpq's file and TLS parameters that asyncpg reads from the environment instead.
_PG_ENVIRONMENT = {"sslrootcert": "PGSSLROOTCERT", "sslcert": "PGSSLCERT", "sslkey": "PGSSLKEY",
                   "sslcrl": "PGSSLCRL", "sslnegotiation": "PGSSLNEGOTIATION",
                   "ssl_min_protocol_version": "PGSSLMINPROTOCOLVERSION",
                   "ssl_max_protocol_version": "PGSSLMAXPROTOCOLVERSION"}


def _asyncpg_query(query: str) -> str:
    """A PostgreSQL URL's query as asyncpg takes it: libpq's ``sslmode=`` (what managed
    PostgreSQL providers hand out) becomes ``ssl=``; a libpq parameter asyncpg cannot take
    is refused here, with its equivalent, instead of failing every connection."""
    from urllib.parse import unquote_plus

    parts: list[str] = []
    ssl_given: list[str] = []
    for part in query.split("&"):
        if not part:
            continue
        name, _, raw_value = part.partition("=")
        name, text = unquote_plus(name), unquote_plus(raw_value)
        if name in ("sslmode", "ssl"):
            mode = text.strip().lower()
            if mode not in SSL_MODES:
                raise SettingsError(f"EASEL_DATABASE_URL: {name}={text!r} must be one of: "
                                    f"{', '.join(SSL_MODES)}")
            ssl_given.append(name)
            if len(ssl_given) > 1:
                raise SettingsError("EASEL_DATABASE_URL: give sslmode or ssl, not both")
            parts.append(f"ssl={mode}")
        elif name in _PG_ENVIRONMENT:
            raise SettingsError(
                f"EASEL_DATABASE_URL: asyncpg does not take {name} in the URL: set "
                f"{_PG_ENVIRONMENT[name]}={text} in the environment of every Easel process instead")
        elif name == "connect_timeout":
            raise SettingsError("EASEL_DATABASE_URL: asyncpg does not take connect_timeout in the "
                                "URL: set EASEL_DATABASE_TIMEOUT (seconds) instead")
        elif name not in ASYNCPG_URL_PARAMETERS:
            raise SettingsError(
                f"EASEL_DATABASE_URL: asyncpg does not take {name!r} in the URL; it takes: "
                f"sslmode (or ssl), {', '.join(ASYNCPG_URL_PARAMETERS[1:])}")
        else:
            parts.append(part)
    return "&".join(parts)


def _broker_url(raw: str) -> str:
    """``EASEL_BROKER_URL``: Redis, or RabbitMQ (AMQP) where its client is installed (an
    extra: dramatiq does not bring it, and a worker would otherwise die importing it)."""
    value = raw.strip()
    if value and not value.startswith(("redis://", "rediss://", "amqp://", "amqps://")):
        raise SettingsError(
            f"EASEL_BROKER_URL={raw!r} is not supported: use redis://host:port/db or amqp://…"
        )
    scheme = value.partition("://")[0]
    if scheme in ("amqp", "amqps") and not _installed("pika"):
        raise SettingsError(f"EASEL_BROKER_URL={scheme}://… needs the pika package: "
                            "pip install 'easel[rabbitmq]'")
    if scheme in ("redis", "rediss") and not _installed("redis"):
        raise SettingsError(f"EASEL_BROKER_URL={scheme}://… needs the redis package: "
                            "pip install 'easel[redis]'")
    return value


def _positive_int(name: str, raw: str) -> int:
    try:
        value = int(raw.strip())
    except ValueError:
        raise SettingsError(f"{name}={raw!r} is not a whole number") from None
    if value < 1:
        raise SettingsError(f"{name}={raw!r} must be at least 1")
    return value


def _non_negative_int(name: str, raw: str) -> int:
    try:
        value = int(raw.strip())
    except ValueError:
        raise SettingsError(f"{name}={raw!r} is not a whole number") from None
    if value < 0:
        raise SettingsError(f"{name}={raw!r} must be 0 or more")
    return value


SMTP_SECURITY = ("none", "starttls", "tls")
_MAIL_FROM_RE = re.compile(r"^(?:[^<>\r\n]*<)?[^@\s<>]+@[^@\s<>]+>?$")


def _smtp_port(raw: str) -> int:
    value = _positive_int("EASEL_SMTP_PORT", raw)
    if value > 65535:
        raise SettingsError(f"EASEL_SMTP_PORT={raw!r} must be a port number (1-65535)")
    return value


def _smtp_from(raw: str, host: str, domain: str) -> str:
    value = raw.strip()
    if not value:
        return f"notifications@{domain.split(':')[0]}" if host else ""
    if not _MAIL_FROM_RE.match(value):
        raise SettingsError(f"EASEL_SMTP_FROM={raw!r} must be an e-mail address, "
                            "like 'Easel <notifications@art.example>'")
    return value


MIN_SECRET_KEY_LENGTH = 32
LOG_FORMATS = ("text", "json")
MIN_METRICS_TOKEN_LENGTH = 16


def _metrics_token(raw: str) -> str:
    value = raw.strip()
    if value and (len(value) < MIN_METRICS_TOKEN_LENGTH or any(c.isspace() for c in value)):
        raise SettingsError(
            f"EASEL_METRICS_TOKEN must be at least {MIN_METRICS_TOKEN_LENGTH} characters without "
            "spaces (e.g. the output of `openssl rand -hex 32`), or unset (loopback only)")
    return value


def _device(raw: str) -> str:
    value = raw.strip().lower()
    if not _DEVICE_RE.match(value):
        raise SettingsError(
            f"EASEL_PROTECT_DEVICE={raw!r} must be auto, cpu, cuda or cuda:N (a GPU's number)"
        )
    return value


def _secret_key(raw: str) -> str:
    value = raw.strip()
    if value and len(value) < MIN_SECRET_KEY_LENGTH:
        raise SettingsError(
            f"EASEL_SECRET_KEY is too short: use at least {MIN_SECRET_KEY_LENGTH} random characters "
            "(e.g. the output of `openssl rand -hex 32`), or leave it unset"
        )
    return value


def _seconds(name: str, raw: str) -> float:
    try:
        value = float(raw.strip())
    except ValueError:
        raise SettingsError(f"{name}={raw!r} is not a number of seconds") from None
    if not 0 <= value <= 3600:
        raise SettingsError(f"{name}={raw!r} must be between 0 and 3600")
    return value


def _trusted_proxies(raw: str) -> tuple[str, ...]:
    """``EASEL_TRUSTED_PROXIES``: comma-separated addresses or networks, or ``*`` (any).

    Returned as uvicorn's ``forwarded_allow_ips`` wants them: uvicorn reads a network
    strictly and keeps one it cannot read as a literal that matches no client, so a network
    written with host bits (``172.18.0.1/16``, the proxy's own address) is given as the
    network (``172.18.0.0/16``); and it trusts everyone only for a lone ``*``."""
    entries = tuple(part.strip() for part in raw.split(",") if part.strip())
    if not entries:
        raise SettingsError("EASEL_TRUSTED_PROXIES is empty: name the proxy's address, e.g. 127.0.0.1")
    if "*" in entries:
        return ("*",)
    normalised: list[str] = []
    for entry in entries:
        try:
            if "/" in entry:
                normalised.append(str(ipaddress.ip_network(entry, strict=False)))
            else:
                normalised.append(str(ipaddress.ip_address(entry)))
        except ValueError:
            raise SettingsError(
                f"EASEL_TRUSTED_PROXIES: {entry!r} is not an IP address or network "
                "(e.g. 127.0.0.1, 172.16.0.0/12 or *)") from None
    return tuple(dict.fromkeys(normalised))


STORAGE_BACKENDS = ("local", "s3")


def _http_url(name: str, raw: str) -> str:
    value = raw.strip().rstrip("/")
    if value and not re.match(r"^https?://[^/\s]+(/\S*)?$", value):
        raise SettingsError(f"{name}={raw!r} must be an http:// or https:// URL")
    return value


def read_dotenv(path: Path) -> dict[str, str]:
    """Parse a ``.env`` file: ``NAME=value`` lines, ``#`` comments, optional quotes."""
    values: dict[str, str] = {}
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("export "):
            line = line[len("export "):].lstrip()
        name, sep, value = line.partition("=")
        if not sep or not name.strip():
            raise SettingsError(f"{path}:{number}: expected NAME=value")
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
            value = value[1:-1]
        values[name.strip()] = value
    return values


def load_settings(
    environ: Mapping[str, str] | None = None, dotenv: Path | None = Path(".env")
) -> Settings:
    """Build :class:`Settings` from the environment (which wins) and an optional ``.env``."""
    env: dict[str, str] = {}
    if dotenv is not None and dotenv.is_file():
        env.update(read_dotenv(dotenv))
    env.update(os.environ if environ is None else environ)

    def get(name: str, default: str = "") -> str:
        return env.get(name, default)

    scheme = _choice("EASEL_SCHEME", get("EASEL_SCHEME", "https"), ("https", "http"))
    data_dir = Path(get("EASEL_DATA_DIR", "./data") or "./data").expanduser()
    vae_raw = get("EASEL_VAE_PATH").strip()
    vae_paths = tuple(Path(p).expanduser() for p in vae_raw.split(os.pathsep) if p.strip())
    for path in vae_paths:
        if not path.exists():
            raise SettingsError(f"EASEL_VAE_PATH: {path} does not exist (models load only from local paths)")

    known = {
        "EASEL_DOMAIN", "EASEL_SCHEME", "EASEL_DATA_DIR", "EASEL_DATABASE_URL",
        "EASEL_BROKER_URL", "EASEL_VAE_PATH", "EASEL_ALLOW_PRIVATE_ADDRESSES",
        "EASEL_REGISTRATIONS", "EASEL_AI_UPLOADS", "EASEL_RATE_LIMITS",
        "EASEL_AUTHORIZED_FETCH", "EASEL_TITLE", "EASEL_API_RATE_LIMIT", "EASEL_SECRET_KEY",
        "EASEL_PUBLIC_CACHE_SECONDS", "EASEL_DATABASE_POOL_SIZE", "EASEL_DATABASE_TIMEOUT",
        "EASEL_PROTECT_STRENGTH",
        "EASEL_PROTECT_PROFILE", "EASEL_PROTECT_DEVICE", "EASEL_TRUSTED_PROXIES",
        "EASEL_STORAGE", "EASEL_S3_BUCKET", "EASEL_S3_ENDPOINT", "EASEL_S3_REGION", "EASEL_S3_ACCESS_KEY_ID",
        "EASEL_S3_SECRET_ACCESS_KEY", "EASEL_S3_PUBLIC_URL",
        "EASEL_LOG_FORMAT", "EASEL_METRICS", "EASEL_METRICS_TOKEN",
        "EASEL_SMTP_HOST", "EASEL_SMTP_PORT", "EASEL_SMTP_USER", "EASEL_SMTP_PASSWORD",
        "EASEL_SMTP_FROM", "EASEL_SMTP_SECURITY",
        "EASEL_FEDERATION_MODE", "EASEL_SHOW_DOMAIN_BLOCKS",
        "EASEL_REMOTE_MEDIA_CACHE_MB", "EASEL_REMOTE_MEDIA_RETENTION_DAYS", "EASEL_IP_RETENTION_DAYS",
        "EASEL_ACCOUNT_DELETION_GRACE_DAYS", "EASEL_LINK_CARDS",
        "EASEL_STATUS_RATE_LIMIT", "EASEL_MEDIA_RATE_LIMIT", "EASEL_SIGN_UP_RATE_LIMIT",
        "EASEL_INBOX_RATE_LIMIT",
    }
    storage = _choice("EASEL_STORAGE", get("EASEL_STORAGE", "local"), STORAGE_BACKENDS)
    s3_bucket = get("EASEL_S3_BUCKET").strip()
    if storage == "s3" and not s3_bucket:
        raise SettingsError("EASEL_STORAGE=s3 needs EASEL_S3_BUCKET (the bucket's name)")
    return Settings(
        domain=_domain(get("EASEL_DOMAIN", "localhost:8080")),
        scheme=scheme,
        data_dir=data_dir,
        database_url=_database_url(get("EASEL_DATABASE_URL")),
        broker_url=_broker_url(get("EASEL_BROKER_URL")),
        vae_paths=vae_paths,
        protect_strength=_choice("EASEL_PROTECT_STRENGTH", get("EASEL_PROTECT_STRENGTH", "default"),
                                 PROTECT_STRENGTHS),
        protect_profile=_choice("EASEL_PROTECT_PROFILE", get("EASEL_PROTECT_PROFILE", "auto"),
                                PROTECT_PROFILES),
        protect_device=_device(get("EASEL_PROTECT_DEVICE", "auto")),
        allow_private_addresses=parse_bool(
            "EASEL_ALLOW_PRIVATE_ADDRESSES", get("EASEL_ALLOW_PRIVATE_ADDRESSES", "false")
        ),
        registrations=_choice(
            "EASEL_REGISTRATIONS", get("EASEL_REGISTRATIONS", "approval"), REGISTRATION_MODES
        ),
        ai_uploads=_choice("EASEL_AI_UPLOADS", get("EASEL_AI_UPLOADS", "reject"), AI_UPLOAD_POLICIES),
        rate_limits=parse_bool("EASEL_RATE_LIMITS", get("EASEL_RATE_LIMITS", "on")),
        authorized_fetch=parse_bool("EASEL_AUTHORIZED_FETCH", get("EASEL_AUTHORIZED_FETCH", "false")),
        trusted_proxies=_trusted_proxies(get("EASEL_TRUSTED_PROXIES", "127.0.0.1")),
        storage=storage,
        s3_bucket=s3_bucket,
        s3_endpoint=_http_url("EASEL_S3_ENDPOINT", get("EASEL_S3_ENDPOINT")),
        s3_region=get("EASEL_S3_REGION").strip(),
        s3_access_key_id=get("EASEL_S3_ACCESS_KEY_ID").strip(),
        s3_secret_access_key=get("EASEL_S3_SECRET_ACCESS_KEY").strip(),
        s3_public_url=_http_url("EASEL_S3_PUBLIC_URL", get("EASEL_S3_PUBLIC_URL")),
        remote_media_cache_mb=_non_negative_int("EASEL_REMOTE_MEDIA_CACHE_MB",
                                                get("EASEL_REMOTE_MEDIA_CACHE_MB", "0")),
        remote_media_retention_days=_non_negative_int(
            "EASEL_REMOTE_MEDIA_RETENTION_DAYS", get("EASEL_REMOTE_MEDIA_RETENTION_DAYS", "0")),
        link_cards=parse_bool("EASEL_LINK_CARDS", get("EASEL_LINK_CARDS", "on")),
        ip_retention_days=_non_negative_int("EASEL_IP_RETENTION_DAYS",
                                            get("EASEL_IP_RETENTION_DAYS", "365")),
        smtp_host=get("EASEL_SMTP_HOST").strip(),
        smtp_port=_smtp_port(get("EASEL_SMTP_PORT", "587")),
        smtp_user=get("EASEL_SMTP_USER").strip(),
        smtp_password=get("EASEL_SMTP_PASSWORD"),
        smtp_from=_smtp_from(get("EASEL_SMTP_FROM"), get("EASEL_SMTP_HOST").strip(),
                             _domain(get("EASEL_DOMAIN", "localhost:8080"))),
        smtp_security=_choice("EASEL_SMTP_SECURITY", get("EASEL_SMTP_SECURITY", "starttls"),
                              SMTP_SECURITY),
        account_deletion_grace_days=_non_negative_int(
            "EASEL_ACCOUNT_DELETION_GRACE_DAYS", get("EASEL_ACCOUNT_DELETION_GRACE_DAYS", "30")),
        federation_mode=_choice("EASEL_FEDERATION_MODE", get("EASEL_FEDERATION_MODE", "open"),
                                FEDERATION_MODES),
        show_domain_blocks=_choice("EASEL_SHOW_DOMAIN_BLOCKS",
                                   get("EASEL_SHOW_DOMAIN_BLOCKS", "disabled"), SHOW_DOMAIN_BLOCKS),
        log_format=_choice("EASEL_LOG_FORMAT", get("EASEL_LOG_FORMAT", "text"), LOG_FORMATS),
        metrics=parse_bool("EASEL_METRICS", get("EASEL_METRICS", "off")),
        metrics_token=_metrics_token(get("EASEL_METRICS_TOKEN")),
        title=get("EASEL_TITLE", "Easel").strip() or "Easel",
        api_rate_limit=_positive_int("EASEL_API_RATE_LIMIT", get("EASEL_API_RATE_LIMIT", "300")),
        status_rate_limit=_positive_int("EASEL_STATUS_RATE_LIMIT",
                                        get("EASEL_STATUS_RATE_LIMIT", "300")),
        media_rate_limit=_positive_int("EASEL_MEDIA_RATE_LIMIT", get("EASEL_MEDIA_RATE_LIMIT", "30")),
        sign_up_rate_limit=_positive_int("EASEL_SIGN_UP_RATE_LIMIT",
                                         get("EASEL_SIGN_UP_RATE_LIMIT", "5")),
        inbox_rate_limit=_positive_int("EASEL_INBOX_RATE_LIMIT", get("EASEL_INBOX_RATE_LIMIT", "3000")),
        public_cache_seconds=_seconds("EASEL_PUBLIC_CACHE_SECONDS",
                                      get("EASEL_PUBLIC_CACHE_SECONDS", "1")),
        database_pool_size=_positive_int("EASEL_DATABASE_POOL_SIZE",
                                         get("EASEL_DATABASE_POOL_SIZE", "20")),
        database_timeout=_seconds("EASEL_DATABASE_TIMEOUT", get("EASEL_DATABASE_TIMEOUT", "30")),
        secret_key=_secret_key(get("EASEL_SECRET_KEY")),
        extra={k: v for k, v in env.items() if k.startswith("EASEL_") and k not in known},
    )
