"""What docker-compose.yaml asks of the code is what the code accepts; the stack starts in order.

Read without Docker: every command is parsed by the parser that will run it (the trainer's and
the API's argparse, `mlflow server`'s click command), every environment variable is a settings
field or an MLflow/AWS variable those libraries read, and every URL names a database, bucket,
host and port this same file creates.
"""

from __future__ import annotations

import argparse
import re
from collections.abc import Iterator
from typing import Any, NoReturn
from urllib.parse import urlsplit

import click
import pytest
from mlflow.cli import server as mlflow_server
from mlflow.server.security_utils import is_allowed_host_header

from app.__main__ import build_parser as app_parser
from app.settings import Settings
from tests.env_names import AWS_VARIABLES, MLFLOW_VARIABLES
from tests.stack import compose
from trainer.cli import build_parser as trainer_parser
from trainer.settings import TrainerSettings

SERVICES = {"postgres", "minio", "create-bucket", "mlflow-server", "seed-db", "trainer", "api"}
SERVICES |= {"prometheus", "grafana"}  # monitoring/; grafana behind the `grafana` profile
HEALTHY, DONE = "service_healthy", "service_completed_successfully"
CHAIN = {
    "postgres": {},
    "minio": {},
    "create-bucket": {"minio": HEALTHY},
    "mlflow-server": {"postgres": HEALTHY, "create-bucket": DONE},
    "seed-db": {"postgres": HEALTHY},
    "trainer": {"seed-db": DONE, "create-bucket": DONE, "mlflow-server": HEALTHY},
    "api": {"trainer": DONE, "mlflow-server": HEALTHY, "minio": HEALTHY, "postgres": HEALTHY},
    "prometheus": {},
    "grafana": {"prometheus": HEALTHY},
}
LONG_RUNNING = {"postgres", "minio", "mlflow-server", "api", "prometheus"}
OPTIONAL = {"grafana"}  # runs, has no healthcheck (tests/monitoring checks it)
ONE_SHOT = SERVICES - LONG_RUNNING - OPTIONAL
TRAINER_IMAGE = {"create-bucket", "seed-db", "trainer"}
MLFLOW_SERVER_VARIABLES = {p.envvar for p in mlflow_server.params if isinstance(p.envvar, str)}
POSTGRES_URL = re.compile(r"postgres(?:ql)?(?:\+\w+)?://[^\s\"']+")


@pytest.fixture(scope="module")
def stack() -> dict[str, Any]:
    """The compose file as `docker compose up` sees it after `cp .env.example .env`."""
    return compose.load()


@pytest.fixture(scope="module")
def services(stack: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return stack["services"]


def project_argv(service: dict[str, Any], module: str) -> list[str]:
    argv = compose.command(service)
    assert argv[:3] == ["python", "-m", module], f"expected `python -m {module} ...`: {argv}"
    return argv[3:]


def parse(parser: argparse.ArgumentParser, argv: list[str]) -> argparse.Namespace:
    """argparse's verdict on argv; a usage error fails the test with argparse's message."""

    def refuse(message: str) -> NoReturn:
        pytest.fail(f"{parser.prog} {' '.join(argv)}: {message}")

    parser.error = refuse  # type: ignore[method-assign]
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub in action.choices.values():
                sub.error = refuse
    return parser.parse_args(argv)


def mlflow_server_params(service: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> dict:
    """`mlflow server`'s options as click resolves them from the command and the environment."""
    argv = compose.command(service)
    assert argv[:2] == ["mlflow", "server"], argv
    for name in MLFLOW_SERVER_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    for name, value in compose.environment(service).items():
        monkeypatch.setenv(name, value)
    try:
        ctx = mlflow_server.make_context("mlflow server", argv[2:])
    except click.UsageError as exc:
        pytest.fail(f"mlflow server rejects the compose command: {exc.format_message()}")
    return ctx.params


def postgres_urls(services: dict[str, dict[str, Any]]) -> Iterator[tuple[str, str]]:
    for name, service in services.items():
        texts = [*compose.environment(service).values(), *(service.get("command") or [])]
        for text in texts:
            for url in POSTGRES_URL.findall(str(text)):
                yield name, url


# -- services, order, health -------------------------------------------------------------------


def test_every_promised_service_is_there(services: dict[str, Any]) -> None:
    assert set(services) == SERVICES


def test_depends_on_forms_the_start_chain(services: dict[str, Any]) -> None:
    actual = {name: compose.depends_on(service) for name, service in services.items()}
    assert actual == CHAIN


def test_waits_are_on_healthchecks_and_one_shots_that_exist(services: dict[str, Any]) -> None:
    for name, service in services.items():
        for dep, condition in compose.depends_on(service).items():
            if condition == HEALTHY:
                assert "healthcheck" in services[dep], f"{name} waits on {dep}'s missing check"
            if condition == DONE:
                assert dep in ONE_SHOT, f"{name} waits for {dep} to exit, but it never does"
    for name in ONE_SHOT:
        assert services[name].get("restart", "no") == "no", f"{name} must run once"
        assert "healthcheck" not in services[name]
    for name in LONG_RUNNING:
        assert "healthcheck" in services[name], f"{name} has no healthcheck"


def test_postgres_and_minio_healthchecks_use_their_images_tools(services: dict[str, Any]) -> None:
    postgres = compose.healthcheck(services["postgres"])
    assert postgres[0] == "pg_isready"
    # Over TCP, so it fails during initdb (socket only) until the init scripts have run.
    assert postgres[postgres.index("-h") + 1] == "127.0.0.1"
    assert compose.healthcheck(services["minio"]) == ["mc", "ready", "local"]


@pytest.mark.parametrize(("name", "path"), [("mlflow-server", "/health"), ("api", "/readyz")])
def test_http_healthchecks_use_python_on_the_served_port(
    services: dict[str, Any], name: str, path: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    check = compose.healthcheck(services[name])
    assert check[:2] == ["python", "-c"], "the images have python, not curl or wget"
    compile(check[2], "<healthcheck>", "exec")
    if name == "api":
        port = parse(app_parser(), project_argv(services[name], "app")).port
    else:
        port = mlflow_server_params(services[name], monkeypatch)["port"]
    assert f"'http://127.0.0.1:{port}{path}'" in check[2]


# -- images ------------------------------------------------------------------------------------


def test_every_image_is_pinned(services: dict[str, Any]) -> None:
    built = {service["image"] for service in services.values() if "build" in service}
    for name, service in services.items():
        image = service["image"]
        repository, _, tag = image.rpartition(":")
        assert repository and tag, f"{name}: image {image} has no tag"
        if image in built:
            assert tag != "latest", f"{name}: built image tagged latest"
            continue
        assert tag != "latest" and re.search(r"\d", tag), f"{name}: {image} is not pinned"


def test_each_image_of_the_project_is_built_once_and_never_pulled(
    services: dict[str, Any],
) -> None:
    builders: dict[str, list[str]] = {}
    for name, service in services.items():
        if "build" in service:
            builders.setdefault(service["image"], []).append(name)
    assert all(len(names) == 1 for names in builders.values()), builders
    assert builders[services["trainer"]["image"]] == ["trainer"]
    for name, service in services.items():
        if service["image"] in builders:
            # Not "missing" (the default): compose would first ask a registry for the image.
            assert service.get("pull_policy") == "never", name
    assert {n for n, s in services.items() if s["image"] == services["trainer"]["image"]} == (
        TRAINER_IMAGE
    )


def test_minio_comes_from_quay_with_a_release_tag(services: dict[str, Any]) -> None:
    image = services["minio"]["image"]
    assert re.fullmatch(r"quay\.io/minio/minio:RELEASE\.\d{4}-\d\d-\d\dT\d\d-\d\d-\d\dZ", image)
    for name, service in services.items():
        # Docker Hub's minio/minio (and minio/mc) are gone.
        assert not service["image"].startswith("minio/"), name


def strings(node: Any) -> Iterator[str]:
    if isinstance(node, str):
        yield node
    elif isinstance(node, list):
        for item in node:
            yield from strings(item)
    elif isinstance(node, dict):
        for key, value in node.items():
            yield str(key)
            yield from strings(value)


def test_nothing_downloads_mc_or_anything_else() -> None:
    texts = list(strings(compose.load()))
    texts += [p.read_text() for p in (compose.ROOT / "docker").rglob("*") if p.is_file()]
    for text in texts:
        for word in ("dl.min.io", "minio/mc", "mc alias", "mc mb", "curl", "wget"):
            assert word not in text, f"{word!r} in {text!r}"
        for url in re.findall(r"\w+://[^\s'\"]+", text):
            # Only the stack's own services and loopback; s3:// and postgres URLs name them too.
            host = urlsplit(url).hostname
            assert host in {"minio", "mlflow-server", "postgres", "127.0.0.1", "mlflow"}, url


# -- commands ----------------------------------------------------------------------------------


def test_create_bucket_names_the_artifact_bucket(
    services: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    args = parse(
        trainer_parser(TrainerSettings()), project_argv(services["create-bucket"], "trainer")
    )
    assert args.command == "create-bucket"
    root = mlflow_server_params(services["mlflow-server"], monkeypatch)["default_artifact_root"]
    parts = urlsplit(root)
    assert (parts.scheme, parts.netloc) == ("s3", args.name)


def test_seed_db_and_trainer_use_the_same_table(services: dict[str, Any]) -> None:
    seed = parse(trainer_parser(TrainerSettings()), project_argv(services["seed-db"], "trainer"))
    assert seed.command == "seed-db" and not seed.follow
    train = parse(trainer_parser(TrainerSettings()), project_argv(services["trainer"], "trainer"))
    assert train.command == "train"
    assert seed.table == train.table
    seed_data = compose.environment(services["seed-db"])["TRAINER_DATA"]
    assert compose.environment(services["trainer"])["TRAINER_DATA"] == seed_data


def test_trainer_registers_what_the_api_serves(services: dict[str, Any]) -> None:
    train = parse(trainer_parser(TrainerSettings()), project_argv(services["trainer"], "trainer"))
    assert train.register and train.alias and train.json
    uri = compose.environment(services["api"])["MODEL_URI"]
    assert uri == f"models:/{train.register}@{train.alias}"


def test_api_command_binds_all_interfaces_on_its_port(services: dict[str, Any]) -> None:
    args = parse(app_parser(), project_argv(services["api"], "app"))
    assert args.host == "0.0.0.0"
    assert f"127.0.0.1:8000:{args.port}" in services["api"]["ports"]


def test_mlflow_server_command_is_one_mlflow_accepts(
    services: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    params = mlflow_server_params(services["mlflow-server"], monkeypatch)
    assert params["host"] == "0.0.0.0"
    assert f"127.0.0.1:5001:{params['port']}" in services["mlflow-server"]["ports"]
    backend = params["backend_store_uri"]
    # SQLAlchemy 2.1 maps a bare postgresql:// to psycopg 3, which the image does not have.
    assert backend.startswith("postgresql+psycopg2://"), backend


def test_other_containers_and_the_browser_pass_mlflows_host_check(
    services: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    params = mlflow_server_params(services["mlflow-server"], monkeypatch)
    allowed = params["allowed_hosts"].split(",")
    envs = [compose.environment(s) for s in services.values()]
    clients = {env["MLFLOW_TRACKING_URI"] for env in envs if "MLFLOW_TRACKING_URI" in env}
    assert clients == {f"http://mlflow-server:{params['port']}"}
    for uri in clients:
        assert is_allowed_host_header(allowed, urlsplit(uri).netloc), uri
    assert is_allowed_host_header(allowed, "localhost:5001")
    assert not is_allowed_host_header(allowed, "attacker.example:5001")


def test_every_host_port_is_a_setting_of_env_example() -> None:
    """So a second stack, or a host with its own PostgreSQL on 5432, can move any of them."""
    example = compose.read_env_file()
    seen: set[str] = set()
    for name, service in compose.raw()["services"].items():
        for mapping in service.get("ports", []):
            match = re.fullmatch(r"127\.0\.0\.1:\$\{(\w+_HOST_PORT):-(\d+)\}:\d+", mapping)
            assert match, f"{name}: {mapping} is not 127.0.0.1:${{NAME_HOST_PORT:-port}}:port"
            variable, default = match.groups()
            assert example.get(variable) == default, f"{variable}: .env.example says otherwise"
            assert variable not in seen, f"{variable} publishes two ports"
            seen.add(variable)
    assert seen


def test_s3_clients_point_at_minio(services: dict[str, Any]) -> None:
    minio = services["minio"]
    assert "127.0.0.1:9000:9000" in minio["ports"] and "127.0.0.1:9001:9001" in minio["ports"]
    for name, service in services.items():
        env = compose.environment(service)
        if "MLFLOW_S3_ENDPOINT_URL" in env:
            assert env["MLFLOW_S3_ENDPOINT_URL"] == "http://minio:9000", name
            assert env["AWS_ACCESS_KEY_ID"] == compose.environment(minio)["MINIO_ROOT_USER"]
            secret = compose.environment(minio)["MINIO_ROOT_PASSWORD"]
            assert env["AWS_SECRET_ACCESS_KEY"] == secret, name


# -- environment -------------------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(TRAINER_IMAGE | {"api", "mlflow-server"}))
def test_environment_names_are_ones_the_code_reads(services: dict[str, Any], name: str) -> None:
    if name == "api":
        own = {field.upper() for field in Settings.model_fields}
    elif name in TRAINER_IMAGE:
        own = {"TRAINER_" + field.upper() for field in TrainerSettings.model_fields}
    else:
        own = MLFLOW_SERVER_VARIABLES
    for variable in compose.environment(services[name]):
        known = variable in own or variable in MLFLOW_VARIABLES or variable in AWS_VARIABLES
        assert known, f"{name}: nothing reads {variable}"


@pytest.mark.parametrize("name", sorted(TRAINER_IMAGE | {"api"}))
def test_environment_values_pass_the_settings_validation(
    services: dict[str, Any], name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    for variable in [*Settings.model_fields, *TrainerSettings.model_fields]:
        monkeypatch.delenv(variable.upper(), raising=False)
        monkeypatch.delenv("TRAINER_" + variable.upper(), raising=False)
    for variable, value in compose.environment(services[name]).items():
        monkeypatch.setenv(variable, value)
    if name == "api":
        settings = Settings(_env_file=None)
        assert settings.resolved_model_uri == compose.environment(services[name])["MODEL_URI"]
    else:
        TrainerSettings()


# -- databases, credentials ----------------------------------------------------------------------


def created_databases(postgres: dict[str, Any]) -> set[str]:
    names = {compose.environment(postgres)["POSTGRES_DB"]}
    mounts = [v for v in postgres["volumes"] if v.endswith(":/docker-entrypoint-initdb.d:ro")]
    assert mounts, "no init scripts mounted"
    folder = compose.ROOT / mounts[0].split(":")[0]
    for script in sorted(folder.glob("*.sql")):
        names |= set(re.findall(r"CREATE DATABASE\s+\"?(\w+)\"?", script.read_text(), re.I))
    return names


def test_every_database_url_names_a_database_postgres_creates(services: dict[str, Any]) -> None:
    postgres = compose.environment(services["postgres"])
    created = created_databases(services["postgres"])
    assert created == {"mlflow", "iris", "predictions"}
    urls = list(postgres_urls(services))
    assert {name for name, _ in urls} == {"mlflow-server", "seed-db", "trainer", "api"}
    for name, url in urls:
        parts = urlsplit(url)
        assert (parts.hostname, parts.port) == ("postgres", 5432), f"{name}: {url}"
        assert parts.username == postgres["POSTGRES_USER"], name
        assert parts.password == postgres["POSTGRES_PASSWORD"], name
        assert parts.path.lstrip("/") in created, f"{name}: database {parts.path} is never created"


def test_data_and_backend_store_are_separate_databases(
    services: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    backend = mlflow_server_params(services["mlflow-server"], monkeypatch)["backend_store_uri"]
    data = compose.environment(services["trainer"])["TRAINER_DATA"]
    assert urlsplit(backend).path == "/mlflow"
    assert urlsplit(data).path == "/iris"


def test_env_example_defines_every_variable_and_secrets_have_no_default() -> None:
    text = compose.COMPOSE_FILE.read_text()
    example = compose.read_env_file()
    assert compose.variables(text) <= set(example), "variables missing from .env.example"
    assert {"POSTGRES_PASSWORD", "MINIO_ROOT_PASSWORD"} <= compose.required_variables(text)
    with pytest.raises(compose.MissingVariable):
        compose.load(env={})  # no .env: compose refuses to start rather than use a default
    assert len(example["MINIO_ROOT_PASSWORD"]) >= 8, "MinIO refuses passwords under 8 characters"
    for value in example.values():
        assert re.fullmatch(r"[\w.-]+", value), f"{value!r} would need quoting in a URL"


def test_host_ports_are_published_on_loopback_only(services: dict[str, Any]) -> None:
    for name, service in services.items():
        for mapping in service.get("ports", []):
            assert str(mapping).startswith("127.0.0.1:"), f"{name}: {mapping}"


def test_interpolation_follows_compose_rules() -> None:
    env = {"SET": "x", "EMPTY": ""}
    assert compose.interpolate("${SET:-d} ${EMPTY:-d} ${EMPTY-d} ${UNSET-d} $$SET $SET", env) == (
        "x d  d $SET x"
    )
    with pytest.raises(compose.MissingVariable):
        compose.interpolate("${EMPTY:?needed}", env)


# -- the fleet overlay ---------------------------------------------------------------------------

HAPROXY_CFG = compose.ROOT / "deploy" / "haproxy" / "haproxy.cfg"


def seconds(value: str) -> float:
    """A duration as Compose and HAProxy write it: 50s, 1s, 500ms, 2m."""
    number, unit = re.fullmatch(r"(\d+(?:\.\d+)?)(ms|s|m)?", value).groups()  # type: ignore[union-attr]
    return float(number) * {"ms": 0.001, "s": 1, "m": 60, None: 1}[unit]


def test_the_fleet_drains_longer_than_the_balancer_takes_to_notice(
    services: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    from app.server.supervisor import SHUTDOWN_GRACE

    fleet = compose.load(compose.FLEET_FILE)["services"]
    env = {**compose.environment(services["api"]), **compose.environment(fleet["api"])}
    for variable in Settings.model_fields:
        monkeypatch.delenv(variable.upper(), raising=False)
    for variable, value in env.items():
        assert (
            variable.lower() in Settings.model_fields
            or variable in AWS_VARIABLES
            or (variable in MLFLOW_VARIABLES)
        ), f"nothing reads {variable}"
        monkeypatch.setenv(variable, value)
    settings = Settings(_env_file=None)
    assert settings.model_reload_interval > 0, "replicas must follow the alias by themselves"

    # The balancer takes a replica out after `fall` failed checks `inter` apart: the drain
    # must outlast that, and docker's stop must wait for the drain, requests and the log.
    server = re.search(r"^\s*default-server (.*)$", HAPROXY_CFG.read_text(), re.M)
    assert server, "no default-server line"
    words = server.group(1).split()
    options = dict(zip(words, words[1:], strict=False))
    assert "check" in words and options["resolvers"] == "docker"
    noticed = seconds(options["inter"]) * int(options["fall"])
    assert settings.drain_seconds > noticed
    stop = settings.drain_seconds + SHUTDOWN_GRACE + settings.prediction_log_flush_seconds
    assert seconds(fleet["api"]["stop_grace_period"]) > stop

    # Checks on readiness, and the balancer where the single API listens.
    text = HAPROXY_CFG.read_text()
    assert re.search(r"http-check send meth GET uri /readyz\b", text)
    # A failed connect, a dead replica's missing answer, a loading replica's 503: sent again.
    (retry_on,) = re.findall(r"^\s*retry-on (.*)$", text, re.M)
    assert {"conn-failure", "empty-response", "503"} <= set(retry_on.split())
    api_port = app_parser().parse_args(compose.command(services["api"])[3:]).port
    assert re.search(rf"server-template api \d+ api:{api_port}\b", text)
    assert fleet["lb"]["ports"] == services["api"]["ports"]
    assert fleet["api"]["ports"] == []
