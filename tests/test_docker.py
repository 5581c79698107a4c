"""The deployment files in docker/ stay valid: the compose file is well-formed and complete,
its settings are ones Easel knows, and the images copy what exists and run real commands.

No Docker engine runs here, so this is the "equivalent YAML check" of the compose file, done
with the same rules ``docker compose config`` applies to these features.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from server.cli import build_parser
from server.settings import load_settings

ROOT = Path(__file__).resolve().parent.parent
DOCKER = ROOT / "docker"
SERVICES = {"postgres", "redis", "web", "worker", "protect-worker"}
_INTERPOLATION = re.compile(r"\$\{([A-Z_][A-Z0-9_]*)(?::?[-?][^}]*)?\}")


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    document = yaml.safe_load((DOCKER / "compose.yaml").read_text())
    assert isinstance(document, dict)
    return document


def env_example() -> dict[str, str]:
    values: dict[str, str] = {}
    for line in (DOCKER / "env.example").read_text().splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            name, _, value = line.partition("=")
            values[name.strip()] = value.strip()
    return values


def test_the_compose_file_runs_every_part_of_a_cluster(compose: dict[str, Any]) -> None:
    services = compose["services"]
    assert set(services) == SERVICES
    for name in ("postgres", "redis", "web"):
        assert services[name]["healthcheck"]["test"], name
    # Workers start once the web process (which migrates) is healthy; everything restarts.
    for name in ("worker", "protect-worker"):
        assert services[name]["depends_on"]["web"]["condition"] == "service_healthy"
    assert services["web"]["depends_on"]["postgres"]["condition"] == "service_healthy"
    assert all(service.get("restart") == "unless-stopped" for service in services.values())
    # Only the local reverse proxy can reach the web process.
    assert services["web"]["ports"] == ["127.0.0.1:8080:8080"]


def test_the_gpu_worker_reserves_a_gpu_and_reads_the_models_read_only(compose: dict[str, Any]) -> None:
    worker = compose["services"]["protect-worker"]
    devices = worker["deploy"]["resources"]["reservations"]["devices"]
    assert devices == [{"driver": "nvidia", "count": 1, "capabilities": ["gpu"]}]
    assert worker["command"][:3] == ["worker", "--queues", "protect"]
    assert any(volume.endswith(":/models:ro") for volume in worker["volumes"])
    assert worker["environment"]["EASEL_VAE_PATH"].startswith("${VAE_PATHS")
    assert worker["build"]["dockerfile"] == "docker/Dockerfile.cuda"


def test_every_process_shares_the_database_broker_and_data_volume(compose: dict[str, Any]) -> None:
    declared = set(compose["volumes"])
    for name in ("web", "worker", "protect-worker"):
        service = compose["services"][name]
        environment = service["environment"]
        assert environment["EASEL_DATABASE_URL"].startswith("postgresql://easel:")
        assert "@postgres:5432/easel" in environment["EASEL_DATABASE_URL"]
        assert environment["EASEL_BROKER_URL"] == "redis://redis:6379/0"
        assert "easel-data:/data" in service["volumes"]
    for service in compose["services"].values():
        for volume in service.get("volumes", []):
            source = volume.split(":", 1)[0]
            if not source.startswith(("/", ".", "$")):
                assert source in declared, f"volume {source} is not declared"


def test_every_variable_the_compose_file_needs_is_in_the_example_env(compose: dict[str, Any]) -> None:
    text = (DOCKER / "compose.yaml").read_text()
    needed = {match.group(1) for match in _INTERPOLATION.finditer(text)}
    assert needed and needed <= set(env_example())


def test_the_example_env_holds_only_settings_easel_knows() -> None:
    values = env_example()
    settings = load_settings(environ=values, dotenv=None)
    assert settings.extra == {}  # no misspelt EASEL_* (each would be ignored with a warning)
    assert settings.domain == values["EASEL_DOMAIN"]
    assert "172.16.0.0/12" in settings.trusted_proxies


@pytest.mark.parametrize("dockerfile", ["Dockerfile", "Dockerfile.cuda"])
def test_the_images_copy_what_exists_and_download_no_weights(dockerfile: str) -> None:
    text = (DOCKER / dockerfile).read_text()
    for line in text.splitlines():
        if line.startswith("COPY "):
            *sources, _target = line.split()[1:]
            for source in sources:
                assert (ROOT / source).exists(), f"{dockerfile}: COPY {source} is not in the repository"
    assert "huggingface" not in text.lower() and "from_pretrained" not in text
    assert 'ENTRYPOINT ["easel"]' in text


def test_the_commands_of_images_and_compose_are_real_easel_commands(compose: dict[str, Any]) -> None:
    parser = build_parser()
    commands = [service["command"] for name, service in compose["services"].items()
                if name not in ("postgres", "redis")]
    for dockerfile in ("Dockerfile", "Dockerfile.cuda"):
        cmd = re.search(r"^CMD (\[.*\])$", (DOCKER / dockerfile).read_text(), re.M)
        assert cmd is not None
        commands.append(yaml.safe_load(cmd.group(1)))
    for command in commands:
        parser.parse_args(command)  # exits (fails the test) on an unknown command or option


@pytest.mark.parametrize("config", ["nginx.conf", "Caddyfile"])
def test_the_proxy_examples_keep_the_host_and_allow_uploads(config: str) -> None:
    text = (DOCKER / config).read_text()
    assert "127.0.0.1:8080" in text
    if config == "nginx.conf":
        # HTTP signatures cover Host: it must reach Easel unchanged.
        assert "proxy_set_header Host $host;" in text
        assert "X-Forwarded-Proto" in text and "client_max_body_size 20m;" in text
    else:
        assert "reverse_proxy" in text and "max_size 20MB" in text
