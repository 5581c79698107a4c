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
    # How long anonymous public/hashtag timeline responses are reused (0: never).
    public_cache_seconds: float = 1.0
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
    title: str = "Easel"
    # Signs login cookies and CSRF tokens; empty: a random key kept in the data dir.
    secret_key: str = field(default="", repr=False)
    extra: Mapping[str, str] = field(default_factory=dict)

    @property
    def base_url(self) -> str:
        return f"{self.scheme}://{self.domain}"

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
    return value


def _broker_url(raw: str) -> str:
    value = raw.strip()
    if value and not value.startswith(("redis://", "rediss://", "amqp://", "amqps://")):
        raise SettingsError(
            f"EASEL_BROKER_URL={raw!r} is not supported: use redis://host:port/db or amqp://…"
        )
    return value


def _positive_int(name: str, raw: str) -> int:
    try:
        value = int(raw.strip())
    except ValueError:
        raise SettingsError(f"{name}={raw!r} is not a whole number") from None
    if value < 1:
        raise SettingsError(f"{name}={raw!r} must be at least 1")
    return value


MIN_SECRET_KEY_LENGTH = 32


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
    """``EASEL_TRUSTED_PROXIES``: comma-separated addresses or networks, or ``*`` (any)."""
    entries = tuple(part.strip() for part in raw.split(",") if part.strip())
    if not entries:
        raise SettingsError("EASEL_TRUSTED_PROXIES is empty: name the proxy's address, e.g. 127.0.0.1")
    for entry in entries:
        if entry == "*":
            continue
        try:
            ipaddress.ip_network(entry, strict=False)
        except ValueError:
            raise SettingsError(
                f"EASEL_TRUSTED_PROXIES: {entry!r} is not an IP address or network "
                "(e.g. 127.0.0.1, 172.16.0.0/12 or *)") from None
    return entries


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
        "EASEL_PUBLIC_CACHE_SECONDS", "EASEL_PROTECT_STRENGTH", "EASEL_PROTECT_PROFILE",
        "EASEL_PROTECT_DEVICE", "EASEL_TRUSTED_PROXIES", "EASEL_STORAGE", "EASEL_S3_BUCKET",
        "EASEL_S3_ENDPOINT", "EASEL_S3_REGION", "EASEL_S3_ACCESS_KEY_ID",
        "EASEL_S3_SECRET_ACCESS_KEY", "EASEL_S3_PUBLIC_URL",
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
        title=get("EASEL_TITLE", "Easel").strip() or "Easel",
        api_rate_limit=_positive_int("EASEL_API_RATE_LIMIT", get("EASEL_API_RATE_LIMIT", "300")),
        public_cache_seconds=_seconds("EASEL_PUBLIC_CACHE_SECONDS",
                                      get("EASEL_PUBLIC_CACHE_SECONDS", "1")),
        secret_key=_secret_key(get("EASEL_SECRET_KEY")),
        extra={k: v for k, v in env.items() if k.startswith("EASEL_") and k not in known},
    )
