"""The deployment files in docker/ stay valid: the compose file is well-formed and complete,
its settings are ones Easel knows, the images copy what exists and run real commands, and
the README's deployment commands match them.

No Docker engine runs here, so this is the "equivalent YAML check" of the compose file, done
with the same rules ``docker compose config`` applies to these features.
"""

from __future__ import annotations

import re
import shlex
from pathlib import Path
from typing import Any

import pytest
import yaml

from server.cli import build_parser
from server.settings import load_settings
from server.storage import S3Storage

ROOT = Path(__file__).resolve().parent.parent
DOCKER = ROOT / "docker"
SERVICES = {"postgres", "redis", "migrate", "web", "worker", "protect-worker", "protect-worker-cpu"}
# The long-running Easel processes (migrate is the one-shot that runs before them).
EASEL_SERVICES = ("web", "worker", "protect-worker", "protect-worker-cpu")
# Each protection worker and the compose profile that starts it.
PROTECT_WORKERS = {"protect-worker": "gpu", "protect-worker-cpu": "cpu"}
_INTERPOLATION = re.compile(r"\$\{([A-Z_][A-Z0-9_]*)(?:(:?[-?])([^}]*))?\}")


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


def interpolate(value: str, env: dict[str, str]) -> str:
    """``${X}``, ``${X:-default}`` and ``${X:?error}`` as compose resolves them."""
    def substitute(match: re.Match[str]) -> str:
        name, operator, argument = match.group(1), match.group(2), match.group(3)
        if env.get(name):
            return env[name]
        assert operator != ":?", f"${{{name}}} is required: {argument}"
        return argument if operator == ":-" else ""

    return _INTERPOLATION.sub(substitute, value)


def directives(text: str) -> list[str]:
    """The lines of a config file that are not comments."""
    return [line.strip() for line in text.splitlines() if line.strip() and not line.strip().startswith("#")]


def takes_queue(service: dict[str, Any], queue: str) -> bool:
    command = service.get("command") or []
    if command[:1] != ["worker"]:
        return False
    args = build_parser().parse_args(command)
    return queue in args.queues


def test_the_compose_file_runs_every_part_of_a_cluster(compose: dict[str, Any]) -> None:
    services = compose["services"]
    assert set(services) == SERVICES
    for name in ("postgres", "redis", "web"):
        assert services[name]["healthcheck"]["test"], name
    # Everything restarts, except the one-shot migration (restarted, it would never complete).
    assert services["migrate"]["restart"] == "no"
    assert all(service.get("restart") == "unless-stopped"
               for name, service in services.items() if name != "migrate")
    # Only the local reverse proxy can reach the web process.
    assert services["web"]["ports"] == ["127.0.0.1:8080:8080"]


def test_a_one_shot_migration_runs_before_every_easel_process(compose: dict[str, Any]) -> None:
    services = compose["services"]
    migrate = services["migrate"]
    assert migrate["command"] == ["migrate"]
    assert migrate["depends_on"]["postgres"]["condition"] == "service_healthy"
    assert "healthcheck" not in migrate and "ports" not in migrate
    # A long migration holds the others back instead of running out a health check's
    # start period (web used to migrate inside its own health check's grace time).
    for name in EASEL_SERVICES:
        depends_on = services[name]["depends_on"]
        assert depends_on["migrate"]["condition"] == "service_completed_successfully", name
        assert depends_on["redis"]["condition"] == "service_healthy", name
        assert "web" not in depends_on, name  # the schema, not the web process, is what they need


def test_only_the_web_process_has_a_health_check(compose: dict[str, Any]) -> None:
    # An image-level HEALTHCHECK would mark every worker run from the image unhealthy forever.
    for dockerfile in ("Dockerfile", "Dockerfile.cuda"):
        lines = directives((DOCKER / dockerfile).read_text())
        assert not any(line.startswith("HEALTHCHECK") for line in lines), dockerfile
    web = compose["services"]["web"]["healthcheck"]
    assert "http://127.0.0.1:8080/health" in " ".join(web["test"])
    assert {"interval", "timeout", "start_period", "retries"} <= set(web)
    for name in ("worker", *PROTECT_WORKERS):
        assert compose["services"][name]["healthcheck"] == {"disable": True}, name


def test_exactly_one_protection_worker_starts_and_the_env_picks_which(compose: dict[str, Any]) -> None:
    services = compose["services"]
    for name, profile in PROTECT_WORKERS.items():
        assert services[name]["profiles"] == [profile], name
    # Every other service always starts; the protection workers never both by default.
    assert all("profiles" not in service for name, service in services.items() if name not in PROTECT_WORKERS)
    chosen = env_example()["COMPOSE_PROFILES"].split(",")
    assert len(chosen) == 1 and chosen[0] in PROTECT_WORKERS.values()
    assert len({services[name]["image"] for name in PROTECT_WORKERS}) == 2  # two builds, two tags


def test_the_gpu_worker_reserves_a_gpu_and_reads_the_models_read_only(compose: dict[str, Any]) -> None:
    worker = compose["services"]["protect-worker"]
    devices = worker["deploy"]["resources"]["reservations"]["devices"]
    assert devices == [{"driver": "nvidia", "count": 1, "capabilities": ["gpu"]}]
    assert worker["environment"]["EASEL_PROTECT_DEVICE"] == "cuda"
    assert "args" not in worker["build"]  # the Dockerfile's defaults: the CUDA build


def test_the_cpu_worker_is_the_protect_image_on_cpu_torch(compose: dict[str, Any]) -> None:
    worker = compose["services"]["protect-worker-cpu"]
    assert "deploy" not in worker
    assert worker["environment"]["EASEL_PROTECT_DEVICE"] == "cpu"
    args = worker["build"]["args"]
    assert args["TORCH_INDEX"] == "https://download.pytorch.org/whl/cpu"
    assert args["PROTECT_DEVICE"] == "cpu"
    text = (DOCKER / "Dockerfile.cuda").read_text()
    declared = set(re.findall(r"^ARG ([A-Z_]+)", text, re.M))
    assert set(args) <= declared
    # The image's default device follows the build argument (docker run without compose).
    assert "EASEL_PROTECT_DEVICE=$PROTECT_DEVICE" in text and "ARG PROTECT_DEVICE=cuda" in text


def test_every_worker_of_the_protect_queue_has_torch_and_the_models(compose: dict[str, Any]) -> None:
    """A worker without the models publishes every image unprotected: only the protect image,
    with the weights mounted and EASEL_VAE_PATH set, may take the protect queue."""
    protectors = {name for name, service in compose["services"].items() if takes_queue(service, "protect")}
    assert protectors == set(PROTECT_WORKERS)
    for name in protectors:
        worker = compose["services"][name]
        assert worker["command"][:3] == ["worker", "--queues", "protect"]
        assert worker["build"]["dockerfile"] == "docker/Dockerfile.cuda"
        assert any(volume.endswith(":/models:ro") for volume in worker["volumes"])
        assert worker["environment"]["EASEL_VAE_PATH"].startswith("${VAE_PATHS")
    # The old "no GPU?" advice ran the protect queue on the torch-less worker service.
    misuse = re.compile(r"compose run[^`\n]*\bworker\b[^`\n]*--queues[^`\n]*\bprotect\b")
    for path in (DOCKER / "compose.yaml", ROOT / "README.md"):
        assert not misuse.search(path.read_text()), path


def test_each_service_has_only_settings_easel_knows(compose: dict[str, Any], tmp_path: Path) -> None:
    """The environment each Easel container gets (.env, then the service's own) loads."""
    models = tmp_path / "models"
    (models / "sd-vae").mkdir(parents=True)
    dotenv = env_example()
    for name in ("migrate", *EASEL_SERVICES):
        service = compose["services"][name]
        assert service["env_file"] == ".env"
        environment = dict(dotenv)
        for key, value in service["environment"].items():
            environment[key] = interpolate(str(value), dotenv).replace("/models", str(models))
        settings = load_settings(environ=environment, dotenv=None)
        assert settings.extra == {}, name
        assert settings.data_dir == Path("/data")
        if name in PROTECT_WORKERS:
            assert settings.vae_paths == (models / "sd-vae",), name
            assert settings.protect_device == service["environment"]["EASEL_PROTECT_DEVICE"]
        else:
            assert settings.vae_paths == (), name


def test_every_process_shares_the_database_broker_and_data_volume(compose: dict[str, Any]) -> None:
    declared = set(compose["volumes"])
    for name in ("migrate", *EASEL_SERVICES):
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


@pytest.mark.parametrize("dockerfile", ["Dockerfile", "Dockerfile.cuda"])
def test_the_images_run_examples_give_every_process_the_domain(dockerfile: str) -> None:
    """Ids are built from EASEL_DOMAIN: a worker run without it would federate as localhost."""
    header = [line[1:].strip() for line in (DOCKER / dockerfile).read_text().splitlines()
              if line.startswith("#")]
    examples, current = [], ""
    for line in header:
        current += " " + line.rstrip("\\").strip() if current else line.rstrip("\\").strip()
        if not line.endswith("\\"):
            if current.startswith("docker run"):
                examples.append(shlex.split(current))
            current = ""
    assert examples
    settings_of = [{token.split("=", 1)[0] for token in example if token.startswith("EASEL_")}
                   for example in examples]
    for names in settings_of:
        assert "EASEL_DOMAIN" in names
    # A worker example passes at least what the web example passes.
    assert all(settings_of[0] <= names for names in settings_of[1:])


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
        lines = directives(text)
        # HTTP signatures cover Host: it must reach Easel unchanged, with its port
        # (EASEL_DOMAIN=art.example:8443); $host would drop the port.
        assert "proxy_set_header Host $http_host;" in lines
        assert not any(line.startswith("proxy_set_header Host $host") for line in lines)
        assert "proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;" in lines
        assert "proxy_set_header X-Forwarded-Proto $scheme;" in lines
        assert "client_max_body_size 20m;" in lines
        # `http2 on;` is unknown to nginx before 1.25.1 (Debian 12, Ubuntu 24.04).
        assert "http2 on;" not in lines and "listen 443 ssl http2;" in lines
    else:
        assert "reverse_proxy" in text and "max_size 20MB" in text


def readme_shell_lines() -> list[str]:
    text = (ROOT / "README.md").read_text()
    blocks = re.findall(r"^```sh\n(.*?)^```", text, re.M | re.S)
    return [line.split("  #")[0].strip() for block in blocks for line in block.splitlines()]


_RUN_OPTIONS_WITH_VALUES = {"-v", "--volume", "--entrypoint", "-e", "--env", "-u", "--user",
                            "-w", "--workdir", "--name", "-p", "--publish", "-l", "--label"}


def test_the_readme_compose_commands_name_real_services_and_volumes(compose: dict[str, Any]) -> None:
    text = (ROOT / "README.md").read_text()
    for snippet in re.findall(r"docker compose (?:exec|run) [^`\n]*", text):
        tokens = shlex.split(snippet.split(" < ")[0].split(" > ")[0])[3:]
        while tokens and tokens[0].startswith("-"):
            tokens = tokens[2:] if tokens[0] in _RUN_OPTIONS_WITH_VALUES else tokens[1:]
        assert tokens and tokens[0] in compose["services"], snippet
    # Compose names a volume "<project>_<volume>" (metric names like easel_jobs have no hyphen).
    for volume in re.findall(r"\beasel_([a-z]+-[a-z-]+)", text):
        assert compose["name"] == "easel" and volume in compose["volumes"], volume


def test_the_readme_backup_and_restore_reach_the_compose_database() -> None:
    lines = readme_shell_lines()
    # A terminal (exec without -T) corrupts a binary dump and swallows a restore's input.
    for line in lines:
        if line.startswith("docker compose exec") and re.search(r"[<>]", line):
            assert line.startswith("docker compose exec -T "), line
    dump = next(line for line in lines if "pg_dump" in line)
    assert "-U easel" in dump and "-Fc" in dump
    restore = next(i for i, line in enumerate(lines) if "pg_restore" in line)
    assert "-U easel -d easel" in lines[restore] and "--clean --if-exists" in lines[restore]
    # The database alone comes up first: the migrate service would fill it before the restore.
    assert lines[restore - 1] == "docker compose up -d --wait postgres"
    assert lines[restore + 2] == "docker compose up -d"
    assert "tar" in lines[restore + 1] and "/data" in lines[restore + 1]


def test_the_readme_names_the_s3_public_url_as_easel_builds_it() -> None:
    storage = S3Storage(bucket="media", base_url="https://art.example", public_url="https://cdn.art.example/")
    assert storage.public_url("media/a.webp") == "https://cdn.art.example/public/media/a.webp"
    text = (ROOT / "README.md").read_text()
    row = next(line for line in text.splitlines() if line.startswith("| `EASEL_S3_PUBLIC_URL`"))
    assert "`https://cdn.art.example` → `https://cdn.art.example/public/…`" in row
    assert "serves the bucket's `public/` prefix |" not in row
