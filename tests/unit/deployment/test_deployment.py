"""The production deployment in docker/ (docs/deployment.md), checked without a Docker engine.

No Docker engine runs where these tests run, so images are neither built nor started. What can
be checked here is checked for real: compose.yaml (and the trial override) parsed with PyYAML and
interpolated from .env.example the way Compose does; every `HIE_*` name in the deployment files
walked down `HieSettings` (nested delimiter `__`) and the values validated by `HieSettings`
itself; the Dockerfile parsed (dockerfile-parse), its commands resolved in the `hie` CLI and run
with `--help`; the entrypoint script run with a recording `hie`; the HEALTHCHECK command run
against a local HTTP server, and the real app answering the probed path; the Orthanc
configuration compared with what tests/orthanc_server.py runs the bridge against.
"""

from __future__ import annotations

import base64
import json
import os
import re
import shlex
import subprocess
import sys
import threading
import tomllib
from collections.abc import Iterator, Mapping
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import Any, ClassVar

import pytest
import typer
import yaml
from dockerfile_parse import DockerfileParser
from dotenv import dotenv_values
from fastapi.testclient import TestClient
from pydantic import BaseModel
from typer.testing import CliRunner

from ehr_store import MemoryStore
from hie_server.app import create_app
from hie_server.cli import app as hie_app
from hie_server.settings import HieSettings

REPO = Path(__file__).resolve().parents[3]
DOCKER = REPO / "docker"
SERVICES = {"postgres", "keycloak", "orthanc", "exchange", "proxy"}
#: Values for the secrets .env.example leaves empty (compose refuses to start without them).
TEST_SECRETS = {
    "POSTGRES_PASSWORD": "0a1b2c3d4e5f",
    "KEYCLOAK_DB_PASSWORD": "1b2c3d4e5f6a",
    "KEYCLOAK_ADMIN_PASSWORD": "2c3d4e5f6a7b",
    "ORTHANC_PASSWORD": "3d4e5f6a7b8c",
    "ORTHANC_PROXY_AUTHORIZATION": "Basic aGllLWJyaWRnZTozZDRlNWY2YTdiOGM=",  # hie-bridge:3d4e5f6a7b8c
    "DICOMWEB_GATE_SECRET": "4e5f6a7b8c9d",
}


# -- Compose semantics: interpolation and the !override/!reset merge tags ----------------------
class MissingVariable(ValueError):
    """A `${VAR:?message}` whose variable is unset or empty (Compose refuses to start)."""


_INTERPOLATION = re.compile(
    r"\$\$|\$\{(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?:(?P<op>:?[-?])(?P<arg>[^}]*))?\}"
    r"|\$(?P<bare>[A-Za-z_][A-Za-z0-9_]*)"
)


def interpolate(text: str, env: Mapping[str, str | None]) -> str:
    """Compose file interpolation: `$$`, `${V}`, `$V`, `${V:-d}`, `${V-d}`, `${V:?m}`, `${V?m}`."""

    def one(match: re.Match[str]) -> str:
        if match.group(0) == "$$":
            return "$"
        name = match.group("name") or match.group("bare")
        value, op, arg = env.get(name), match.group("op"), match.group("arg") or ""
        unset_or_empty = value is None or (value == "" and op is not None and op.startswith(":"))
        if op in (":-", "-") and unset_or_empty:
            return arg
        if op in (":?", "?") and unset_or_empty:
            raise MissingVariable(f"{name}: {arg}")
        return value or ""

    return _INTERPOLATION.sub(one, text)


class ComposeLoader(yaml.SafeLoader):
    """Loads Compose files; `!override` / `!reset` values are kept as they are written."""


def _tagged(loader: yaml.SafeLoader, node: yaml.Node) -> Any:
    if isinstance(node, yaml.MappingNode):
        return loader.construct_mapping(node, deep=True)
    if isinstance(node, yaml.SequenceNode):
        return loader.construct_sequence(node, deep=True)
    return loader.construct_scalar(node)


ComposeLoader.add_constructor("!override", _tagged)
ComposeLoader.add_constructor("!reset", _tagged)


def env_example() -> dict[str, str | None]:
    return dict(dotenv_values(DOCKER / ".env.example"))


def filled_env() -> dict[str, str | None]:
    return {**env_example(), **TEST_SECRETS}


def compose(name: str = "compose.yaml", env: Mapping[str, str | None] | None = None) -> dict[str, Any]:
    text = interpolate((DOCKER / name).read_text(encoding="utf-8"), filled_env() if env is None else env)
    loaded: dict[str, Any] = yaml.load(text, Loader=ComposeLoader)
    return loaded


def environment(service: Mapping[str, Any]) -> dict[str, str]:
    env = service.get("environment", {})
    if isinstance(env, list):
        env = dict(item.split("=", 1) for item in env)
    return {k: str(v) for k, v in env.items()}


# -- HieSettings: every HIE_* name must be a real field ----------------------------------------
def settings_field(name: str) -> bool:
    """True when `HIE_A__B__C` names a leaf field of HieSettings (case-insensitive, `__` nesting)."""
    if not name.startswith("HIE_"):
        return False
    model: type[BaseModel] = HieSettings
    parts = name[len("HIE_") :].lower().split("__")
    for depth, part in enumerate(parts):
        field = model.model_fields.get(part)
        if field is None:
            return False
        if depth == len(parts) - 1:
            return True
        annotation = field.annotation
        if not (isinstance(annotation, type) and issubclass(annotation, BaseModel)):
            return False
        model = annotation
    return False


def hie_names(text: str) -> set[str]:
    """`HIE_*` names in `text`; wildcards in prose (`HIE_MLLP__TLS_*`) are not names."""
    return {m for m in re.findall(r"\bHIE_[A-Z0-9_]*[A-Z0-9_*]", text) if not m.endswith(("*", "_"))}


def test_settings_walk_rejects_typos() -> None:
    assert settings_field("HIE_DATABASE_URL") and settings_field("HIE_MLLP__TLS_CLIENT_CA")
    assert settings_field("HIE_IMAGING__ORTHANC_PASSWORD") and settings_field("hie_auth__issuer".upper())
    for typo in ("HIE_AUTH__ISUER", "HIE_MLLP_TLS_CERT", "HIE_HTTP__PORT__X", "HIE_IMAGIN", "HIE_STORE__"):
        assert not settings_field(typo), typo


def test_every_hie_name_in_the_deployment_files_is_a_setting() -> None:
    dockerfile = DockerfileParser(path=str(DOCKER / "Dockerfile"))
    sources = {
        ".env.example": (DOCKER / ".env.example").read_text(encoding="utf-8"),
        "compose.yaml": (DOCKER / "compose.yaml").read_text(encoding="utf-8"),
        "compose.trial.yaml": (DOCKER / "compose.trial.yaml").read_text(encoding="utf-8"),
        "Dockerfile ENV": " ".join(dockerfile.envs),
    }
    seen = set()
    for where, text in sources.items():
        names = hie_names(text)
        assert names, f"no HIE_* name found in {where}"
        wrong = sorted(n for n in names if not settings_field(n))
        assert not wrong, f"{where}: not fields of HieSettings: {wrong}"
        seen |= names
    for wired in ("HIE_DATABASE_URL", "HIE_AUTH__ISSUER", "HIE_AUTH__AUDIENCE", "HIE_AUDIT__SITE",
                  "HIE_IMAGING__ORTHANC_URL", "HIE_MLLP__TLS_CERT", "HIE_MLLP__TLS_KEY",
                  "HIE_MLLP__TLS_CLIENT_CA"):
        assert wired in seen


def _settings_from(env: Mapping[str, str], monkeypatch: pytest.MonkeyPatch) -> HieSettings:
    for key in list(os.environ):
        if key.startswith("HIE_"):
            monkeypatch.delenv(key)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    return HieSettings()


def test_exchange_environment_validates_as_hie_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    exchange = compose()["services"]["exchange"]
    assert exchange["env_file"] == [".env"]
    from_file = {k: v for k, v in filled_env().items() if k.startswith("HIE_") and v is not None}
    settings = _settings_from({**from_file, **environment(exchange)}, monkeypatch)  # environment wins
    assert settings.store.database_url == "postgresql+psycopg://hie:0a1b2c3d4e5f@postgres:5432/hie"
    assert settings.auth.issuer == "https://sso.qingyuan.example.cn/realms/qingyuan" and settings.auth.enabled
    assert settings.auth.mllp_plain == "refuse"
    assert settings.auth.mllp_certificates == {"feed-ttwsy.qingyuan.example.cn": "TTWSY"}
    assert settings.ingest.facilities["TTWSY"].charset == "gb18030"
    assert settings.http.host == "0.0.0.0" and settings.http.port == 8080
    assert settings.http.public_base_url == "https://hie.qingyuan.example.cn/fhir"
    assert settings.imaging.enabled and settings.imaging.orthanc_password is not None
    assert settings.imaging.orthanc_password.get_secret_value() == TEST_SECRETS["ORTHANC_PASSWORD"]
    assert settings.surveillance.pseudonym_key is None  # commented out, not an empty key
    # The MLLP certificates are files of the mounted secrets directory.
    mounts = {v.split(":")[1]: v.split(":")[0] for v in exchange["volumes"]}
    for path in (settings.mllp.tls_cert, settings.mllp.tls_key, settings.mllp.tls_client_ca):
        assert path is not None and str(path.parent) in mounts
        assert mounts[str(path.parent)] == "./secrets/mllp"


def test_trial_environment_validates(monkeypatch: pytest.MonkeyPatch) -> None:
    trial = compose("compose.trial.yaml")["services"]
    settings = _settings_from(environment(trial["exchange"]), monkeypatch)
    assert settings.auth.issuer == "http://keycloak:8180/realms/qingyuan"
    assert settings.mllp.tls_cert is None and settings.auth.mllp_plain == "any"
    assert all(p.startswith("127.0.0.1:") for p in trial["exchange"]["ports"])  # plain MLLP: loopback only
    assert "--import-realm" in trial["keycloak"]["command"] and trial["keycloak"]["command"][0] == "start-dev"
    assert "8180" in trial["keycloak"]["command"][-1]
    assert trial["keycloak"]["ports"] == ["127.0.0.1:8180:8180"]
    source, target = trial["keycloak"]["volumes"][0].split(":")[:2]
    realm_file = DOCKER / source
    assert realm_file.resolve() == (REPO / "docker/keycloak/qingyuan-realm.json").resolve()
    assert target.startswith("/opt/keycloak/data/import/")
    realm = json.loads(realm_file.read_text(encoding="utf-8"))
    assert settings.auth.issuer.endswith(f"/realms/{realm['realm']}")
    assert "production-tls" in trial["proxy"]["profiles"]


# -- compose.yaml: services, health, volumes, order -------------------------------------------
def test_compose_refuses_to_start_with_the_example_secrets_empty() -> None:
    with pytest.raises(MissingVariable, match=r"POSTGRES_PASSWORD|KEYCLOAK_DB_PASSWORD|ORTHANC_PASSWORD"):
        compose(env=env_example())
    for name, value in env_example().items():
        if re.search(r"PASSWORD|SECRET|_KEY$", name):
            assert not value, f".env.example must not carry a secret: {name}"


def test_compose_services_healthchecks_and_volumes() -> None:
    doc = compose()
    services = doc["services"]
    assert set(services) == SERVICES
    image_healthcheck = [i for i in DockerfileParser(path=str(DOCKER / "Dockerfile")).structure
                         if i["instruction"] == "HEALTHCHECK"]
    for name, service in services.items():
        assert service.get("restart") == "unless-stopped"
        if name == "exchange":  # the image's HEALTHCHECK (tested below), not overridden
            assert "healthcheck" not in service and image_healthcheck
            continue
        test = service.get("healthcheck", {}).get("test")
        assert test and test[0] in ("CMD", "CMD-SHELL"), f"{name} has no healthcheck"
    assert services["postgres"]["image"].startswith("postgres:15")
    assert "pg_isready" in services["postgres"]["healthcheck"]["test"][1]
    assert services["keycloak"]["image"].startswith("quay.io/keycloak/keycloak:26.")
    assert services["orthanc"]["image"].startswith("orthancteam/orthanc:")
    assert services["keycloak"]["healthcheck"]["test"][:3] == ["CMD", "bash", "-c"]  # /dev/tcp is bash's
    assert "/health/ready" in services["keycloak"]["healthcheck"]["test"][3]
    named = set(doc["volumes"])
    assert named == {"pgdata", "orthanc-storage", "hie-data", "dicomweb-cache"}
    wanted = {"postgres": "pgdata:/var/lib/postgresql/data", "orthanc": "orthanc-storage:/var/lib/orthanc/db",
              "exchange": "hie-data:/var/lib/hie", "proxy": "dicomweb-cache:/var/cache/nginx/dicomweb"}
    for name, volume in wanted.items():
        assert volume in services[name]["volumes"]
    for name, service in services.items():  # every bind mount's source exists in the repository
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            if source.startswith("./") and "/secrets/" not in source + "/":
                assert (DOCKER / source).exists(), f"{name}: {source} missing"


def test_exchange_starts_after_postgres_is_healthy() -> None:
    services = compose()["services"]
    depends = services["exchange"]["depends_on"]
    assert depends["postgres"]["condition"] == "service_healthy"
    assert depends["keycloak"]["condition"] == "service_healthy"
    assert depends["orthanc"]["condition"] == "service_healthy"
    assert services["keycloak"]["depends_on"]["postgres"]["condition"] == "service_healthy"
    assert services["exchange"]["build"] == {"context": "..", "dockerfile": "docker/Dockerfile"}


def test_published_ports_and_what_stays_inside() -> None:
    services = compose()["services"]
    published = {n: [p.split(":")[-1] for p in s.get("ports", [])] for n, s in services.items()}
    assert published == {"postgres": [], "keycloak": [], "orthanc": ["4242"], "exchange": ["2575"],
                         "proxy": ["443", "80"]}
    exchange_env = environment(services["exchange"])
    assert exchange_env["HIE_IMAGING__ORTHANC_URL"] == "http://orthanc:8042"


def test_keycloak_production_mode_behind_the_proxy() -> None:
    services = compose()["services"]
    keycloak = services["keycloak"]
    env = environment(keycloak)
    assert keycloak["command"] == ["start"]  # not start-dev, no demo realm import
    assert env["KC_HOSTNAME"] == "https://sso.qingyuan.example.cn" and env["KC_PROXY_HEADERS"] == "xforwarded"
    assert env["KC_DB"] == "postgres" and env["KC_DB_PASSWORD"] == TEST_SECRETS["KEYCLOAK_DB_PASSWORD"]
    # The database and role Keycloak uses are the ones the init script creates.
    script = DOCKER / "postgres/initdb/10-keycloak-database.sh"
    assert os.access(script, os.X_OK)
    sql = script.read_text(encoding="utf-8")
    assert env["KC_DB_URL"].endswith("/" + re.findall(r"CREATE DATABASE (\w+)", sql)[0])
    assert env["KC_DB_USERNAME"] == re.findall(r"CREATE ROLE (\w+)", sql)[0]
    assert "KEYCLOAK_DB_PASSWORD" in environment(services["postgres"])
    # The exchange verifies tokens of the issuer browsers see; inside the network that name
    # leads to the proxy too.
    issuer = environment(services["exchange"])["HIE_AUTH__ISSUER"]
    assert issuer == env["KC_HOSTNAME"] + "/realms/qingyuan"
    assert "sso.qingyuan.example.cn" in services["proxy"]["networks"]["default"]["aliases"]


def test_proxy_template_matches_the_services() -> None:
    services = compose()["services"]
    proxy = services["proxy"]
    template = (DOCKER / "proxy/templates/hie.conf.template").read_text(encoding="utf-8")
    every = "".join(t.read_text(encoding="utf-8") for t in (DOCKER / "proxy/templates").glob("*.template"))
    assert "./proxy/templates:/etc/nginx/templates:ro" in proxy["volumes"]
    assert set(re.findall(r"\$\{(\w+)\}", every)) == set(environment(proxy))
    # DICOMweb fast path: its locations included, upstreams are the services, the gate secret the
    # exchange's, the Orthanc credentials the exchange's account
    assert "include /etc/nginx/conf.d/dicomweb.locations;" in template
    assert "server exchange:8080;" in template and "server orthanc:8042;" in template
    proxy_env, exchange_env = environment(proxy), environment(services["exchange"])
    assert proxy_env["HIE_IMAGING__GATE_SECRET"] == exchange_env["HIE_IMAGING__GATE_SECRET"]
    account = ":".join(exchange_env[f"HIE_IMAGING__ORTHANC_{k}"] for k in ("USERNAME", "PASSWORD"))
    basic = "Basic " + base64.b64encode(account.encode()).decode()
    assert proxy_env["ORTHANC_PROXY_AUTHORIZATION"] == basic
    exchange_port = environment(services["exchange"])["HIE_HTTP__PORT"]
    assert set(re.findall(r"proxy_pass (\S+);", template)) == {f"http://exchange:{exchange_port}",
                                                              "http://keycloak:8080"}
    certificates = re.findall(r"ssl_certificate(?:_key)? +(\S+);", template)
    assert certificates and all(c.startswith("/run/secrets/tls/") for c in certificates)
    assert "./secrets/tls:/run/secrets/tls:ro" in proxy["volumes"]
    # The WADO cache: an http-level conf.d/*.conf of the image, inside the volume only the proxy
    # mounts (patient images), bounded; the locations use its zone behind auth_request
    cache_conf = (DOCKER / "proxy/templates/dicomweb-cache.conf.template").read_text(encoding="utf-8")
    assert "proxy_cache_path ${DICOMWEB_CACHE_PATH} " in cache_conf and "keys_zone=dicomweb:" in cache_conf
    assert "max_size=${DICOMWEB_CACHE_MAX_SIZE}" in cache_conf and "use_temp_path=off" in cache_conf
    mounts = [v for n, svc in services.items() for v in svc.get("volumes", []) if "dicomweb-cache" in v]
    assert mounts == ["dicomweb-cache:/var/cache/nginx/dicomweb"]
    assert proxy_env["DICOMWEB_CACHE_PATH"].startswith("/var/cache/nginx/dicomweb/")
    assert re.fullmatch(r"[0-9]+[kmg]", proxy_env["DICOMWEB_CACHE_MAX_SIZE"])
    assert all(re.fullmatch(r"[0-9]+[smhd]", proxy_env[f"DICOMWEB_CACHE_{k}"]) for k in ("INACTIVE", "VALID"))
    locations = (DOCKER / "proxy/templates/dicomweb.locations.template").read_text(encoding="utf-8")
    assert locations.index("auth_request /_dicomweb_gate;") < locations.index("proxy_cache dicomweb;")
    assert "$dicomweb_version" in locations.split("proxy_cache_key", 1)[1].split(";", 1)[0]


def test_env_example_documents_every_variable_compose_uses() -> None:
    text = (DOCKER / ".env.example").read_text(encoding="utf-8")
    defined = set(re.findall(r"^#? ?([A-Z][A-Z0-9_]*)=", text, flags=re.M))
    for name in ("compose.yaml", "compose.trial.yaml"):
        used = set(re.findall(r"\$\{([A-Za-z_][A-Za-z0-9_]*)", (DOCKER / name).read_text(encoding="utf-8")))
        assert used - defined == set(), f"{name} uses variables .env.example does not document"
    previous = ""
    for line in text.splitlines():  # each block of assignments follows a comment line
        if re.match(r"^[A-Z][A-Z0-9_]*=", line):
            assert previous.startswith("#") or re.match(r"^[A-Z]", previous), line
        previous = line


# -- The image --------------------------------------------------------------------------------
def _final_stage(parser: DockerfileParser) -> list[dict[str, Any]]:
    froms = [i for i, item in enumerate(parser.structure) if item["instruction"] == "FROM"]
    return parser.structure[froms[-1] :]


def test_dockerfile_multi_stage_non_root_ports() -> None:
    parser = DockerfileParser(path=str(DOCKER / "Dockerfile"))
    froms = [i["value"] for i in parser.structure if i["instruction"] == "FROM"]
    assert len(froms) == 2 and froms[0].endswith(" AS build") and froms[1].endswith(" AS runtime")
    assert parser.baseimage == "python:3.11-slim-bookworm"
    final = _final_stage(parser)
    user = [i["value"] for i in final if i["instruction"] == "USER"]
    assert user and user[-1].split(":")[0] not in ("root", "0")
    exposed = {p for i in final if i["instruction"] == "EXPOSE" for p in i["value"].split()}
    assert exposed == {"8080", "2575"}
    runs = [i["value"] for i in parser.structure if i["instruction"] == "RUN"]
    installs = [r for r in runs if "pip install" in r]
    assert len(installs) == 1 and "/src" in installs[0]
    assert "[dev]" not in installs[0] and "-e " not in installs[0]  # no dev extras, not editable
    assert parser.envs["HIE_HTTP__PORT"] == "8080" and parser.envs["HIE_MLLP__PORT"] == "2575"


def test_dockerfile_copies_every_package_and_the_context_allows_it() -> None:
    parser = DockerfileParser(path=str(DOCKER / "Dockerfile"))
    sources: list[str] = []
    for item in parser.structure:
        if item["instruction"] == "COPY" and "--from=" not in item["value"]:
            args = [a for a in item["value"].split() if not a.startswith("--")]
            sources += [a.rstrip("/") for a in args[:-1]]
    pyproject = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))
    packages = {p.rstrip("*") for p in pyproject["tool"]["setuptools"]["packages"]["find"]["include"]}
    assert packages <= set(sources)
    assert {"pyproject.toml", "README.md"} <= set(sources)  # README.md is the project's readme
    allowed = [line[1:].rstrip("/") for line in (DOCKER / "Dockerfile.dockerignore").read_text().splitlines()
               if line.startswith("!")]
    for source in sources:
        assert (REPO / source).exists(), source
        assert source in allowed, f"{source} is excluded from the build context"


def test_image_commands_exist_in_the_cli() -> None:
    parser = DockerfileParser(path=str(DOCKER / "Dockerfile"))
    final = _final_stage(parser)
    entrypoint = json.loads([i["value"] for i in final if i["instruction"] == "ENTRYPOINT"][-1])
    cmd = json.loads([i["value"] for i in final if i["instruction"] == "CMD"][-1])
    copied = [i["value"].split()[-2:] for i in final if i["instruction"] == "COPY"]
    assert ["docker/entrypoint.sh", entrypoint[0]] in copied
    script = (DOCKER / "entrypoint.sh").read_text(encoding="utf-8")
    lines = [line.strip() for line in script.splitlines()]
    invoked = [shlex.split(line)[1:] for line in lines if line.startswith("hie ")]
    assert ["db", "upgrade"] in invoked
    compose_cmd = compose()["services"]["exchange"]["command"]
    runner = CliRunner()
    for args in (cmd, compose_cmd, *[a for a in invoked if "$@" not in a]):
        result = runner.invoke(hie_app, [*args, "--help"])
        assert result.exit_code == 0, (args, result.output)
    assert cmd == ["serve"]


def _resolve(tokens: list[str]) -> tuple[list[str], Any]:
    """The leading command names of `tokens` and the (click) command they reach in `hie`."""
    command: Any = typer.main.get_command(hie_app)  # typer's own click: groups have `commands`
    path: list[str] = []
    for token in tokens:
        if token in (getattr(command, "commands", None) or {}):
            command, path = command.commands[token], [*path, token]
        else:
            break
    return path, command


def test_commands_in_the_deployment_guide_exist() -> None:
    guide = (REPO / "docs/deployment.md").read_text(encoding="utf-8")
    runs = re.findall(r"docker compose (?:-f \S+ )*run --rm (?:-\S+ )*exchange ([a-z][^\n#`]*)", guide)
    assert len(runs) >= 3
    for run in runs:
        tokens = shlex.split(run.replace("\\", " "))
        path, command = _resolve(tokens)
        assert path and not hasattr(command, "commands"), run
        options = {o for p in command.params for o in (*p.opts, *p.secondary_opts)}
        for token in tokens[len(path) :]:
            if token.startswith("--"):
                assert token.split("=")[0] in options, f"{run}: {token} is not an option"


def _run_entrypoint(tmp_path: Path, *args: str, fail_upgrade: bool = False) -> tuple[int, list[str]]:
    """Runs docker/entrypoint.sh with a `hie` on PATH that records its arguments."""
    log = tmp_path / "calls"
    fake = tmp_path / "bin" / "hie"
    fake.parent.mkdir(exist_ok=True)
    status = 3 if fail_upgrade else 0
    fake.write_text(f'#!/bin/sh\necho "$*" >> {log}\n[ "$1" = db ] && exit {status}\nexit 0\n')
    fake.chmod(0o755)
    env = {**os.environ, "PATH": f"{fake.parent}:/usr/bin:/bin"}
    done = subprocess.run(["/bin/sh", str(DOCKER / "entrypoint.sh"), *args], env=env, check=False, timeout=10)
    calls = log.read_text().splitlines() if log.exists() else []
    log.unlink(missing_ok=True)
    return done.returncode, calls


def test_entrypoint_upgrades_the_schema_before_serving(tmp_path: Path) -> None:
    assert _run_entrypoint(tmp_path, "serve") == (0, ["db upgrade", "serve"])
    assert _run_entrypoint(tmp_path, "serve", "--port", "8080") == (0, ["db upgrade", "serve --port 8080"])
    assert _run_entrypoint(tmp_path, "errors", "list") == (0, ["errors list"])
    assert _run_entrypoint(tmp_path, "serve", fail_upgrade=True) == (3, ["db upgrade"])  # never serves


class _Probe(BaseHTTPRequestHandler):
    status = 200
    paths: ClassVar[list[str]] = []

    def do_GET(self) -> None:
        type(self).paths.append(self.path)
        self.send_response(type(self).status)
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def probe_server() -> Iterator[HTTPServer]:
    server = HTTPServer(("127.0.0.1", 0), _Probe)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def test_healthcheck_probes_the_metadata_endpoint(probe_server: HTTPServer) -> None:
    parser = DockerfileParser(path=str(DOCKER / "Dockerfile"))
    value = [i["value"] for i in _final_stage(parser) if i["instruction"] == "HEALTHCHECK"][-1]
    command = json.loads(value.split(" CMD ", 1)[1])
    assert command[0] == "python"
    port = str(probe_server.server_address[1])
    env = {**os.environ, "HIE_HTTP__PORT": port}
    env.pop("HIE_HTTP__BASE_PATH", None)
    _Probe.paths.clear()
    for status, healthy in ((200, True), (503, False)):
        _Probe.status = status
        done = subprocess.run(
            [sys.executable, *command[1:]], env=env, capture_output=True, check=False, timeout=20
        )
        assert (done.returncode == 0) is healthy, done.stderr
    path = f"{HieSettings().http.base_path}/metadata"
    assert _Probe.paths == [path, path]
    # ... and the exchange answers that path with 200 (INTERFACES.md readiness probe).
    with TestClient(create_app(HieSettings(), MemoryStore())) as client:
        assert client.get(path).status_code == 200


# -- Orthanc ----------------------------------------------------------------------------------
def test_orthanc_config_has_what_the_bridge_needs() -> None:
    services = compose()["services"]
    orthanc_env = environment(services["orthanc"])
    exchange_env = environment(services["exchange"])
    raw = (DOCKER / "orthanc/orthanc.json").read_text(encoding="utf-8")
    json.loads(raw)  # valid JSON as committed
    config = json.loads(interpolate(raw, orthanc_env))  # the image substitutes ${...} from its env
    assert config["AuthenticationEnabled"] is True and config["RemoteAccessAllowed"] is True
    assert config["RegisteredUsers"] == {
        exchange_env["HIE_IMAGING__ORTHANC_USERNAME"]: exchange_env["HIE_IMAGING__ORTHANC_PASSWORD"]
    }
    assert exchange_env["HIE_IMAGING__ORTHANC_URL"] == f"http://orthanc:{config['HttpPort']}"
    assert any(p.endswith(f":{config['DicomPort']}") for p in services["orthanc"]["ports"])
    assert "./orthanc/orthanc.json:/etc/orthanc/orthanc.json:ro" in services["orthanc"]["volumes"]
    assert orthanc_env["ORTHANC_WEB_VIEWER_PLUGIN_ENABLED"] == "true" and "WebViewer" in config
    sys.path.insert(0, str(REPO / "tests"))
    try:
        from orthanc_server import OrthancServer
    finally:
        sys.path.remove(str(REPO / "tests"))
    tested = OrthancServer(Path("/nonexistent"), 1, 2).config()
    for key in ("AuthenticationEnabled", "DefaultEncoding", "HttpCompressionEnabled",
                "UnknownSopClassAccepted"):
        assert config[key] == tested[key], key
    assert config["DefaultEncoding"] == "Chinese"
    for key in ("Enable", "Root", "EnableWado", "WadoRoot", "StudiesMetadata", "SeriesMetadata"):
        assert config["DicomWeb"][key] == tested["DicomWeb"][key], f"DicomWeb.{key}"


def test_realm_file_is_shipped_in_the_image() -> None:
    parser = DockerfileParser(path=str(DOCKER / "Dockerfile"))
    copies = [i["value"].split() for i in _final_stage(parser) if i["instruction"] == "COPY"]
    realm = [c for c in copies if c[0] == "docker/keycloak/qingyuan-realm.json"]
    assert realm and (REPO / realm[0][0]).is_file()
    assert json.loads((REPO / realm[0][0]).read_text(encoding="utf-8"))["realm"] == "qingyuan"
    guide = (REPO / "docs/deployment.md").read_text(encoding="utf-8")
    assert f"--realm-file {realm[0][1]}" in guide
