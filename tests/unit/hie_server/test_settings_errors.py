"""A bad `HIE_*` value is a one-line red error naming the variable and the reason (exit 1, no
traceback) in every `hie` command that reads settings; secret values are never printed."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from hie_server.cli import app
from hie_server.settings import InvalidSettings, env_name, settings_from_env

runner = CliRunner()


@pytest.mark.parametrize(
    ("name", "value", "reason"),
    [
        ("HIE_MLLP__PROCESSES", "0", "greater than or equal to 1"),
        ("HIE_MLLP__PROCESSES", "100", "less than or equal to 64"),
        ("HIE_MLLP__PROCESSES", "abc", "valid integer"),
        ("HIE_MLLP__PORT", "abc", "valid integer"),
        ("HIE_HTTP__PORT", "-1", "greater than or equal to 1"),
    ],
)
def test_serve_names_the_bad_variable(
    monkeypatch: pytest.MonkeyPatch, name: str, value: str, reason: str
) -> None:
    monkeypatch.setenv(name, value)
    result = runner.invoke(app, ["serve", "--port", "18099", "--mllp-port", "12599"])
    assert result.exit_code == 1, result.output
    assert f"invalid setting {name}={value}: " in result.output and reason in result.output
    assert "Traceback" not in result.output and "ValidationError" not in result.output


@pytest.mark.parametrize(
    "args",
    [
        ["db", "upgrade", "--database-url", "memory://"],
        ["empi", "review", "--database-url", "memory://"],
        ["telemedicine", "holidays"],
        ["imaging", "upload", "/nonexistent", "--orthanc-url", "http://127.0.0.1:1"],
    ],
)
def test_other_commands_refuse_a_bad_setting_the_same_way(
    monkeypatch: pytest.MonkeyPatch, args: list[str]
) -> None:
    monkeypatch.setenv("HIE_STORE__POOL_SIZE", "many")
    result = runner.invoke(app, args)
    assert result.exit_code == 1, result.output
    assert "invalid setting HIE_STORE__POOL_SIZE=many: Input should be a valid integer" in result.output


def test_every_bad_variable_is_listed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HIE_HTTP__PORT", "0")
    monkeypatch.setenv("HIE_MLLP__PROCESSES", "65")
    with pytest.raises(InvalidSettings) as caught:
        settings_from_env()
    assert sorted(p.split("=")[0] for p in caught.value.problems) == [
        "invalid setting HIE_HTTP__PORT",
        "invalid setting HIE_MLLP__PROCESSES",
    ]


def test_secret_values_are_not_printed(monkeypatch: pytest.MonkeyPatch) -> None:
    # SecretStr-typed field, and a plain str field whose name says it is a secret.
    monkeypatch.setenv("HIE_IMAGING", '{"gate_secret": 987654321}')
    monkeypatch.setenv("HIE_AUTH", '{"client_secret": 24681357}')
    result = runner.invoke(app, ["db", "upgrade", "--database-url", "memory://"])
    assert result.exit_code == 1
    assert "invalid setting HIE_IMAGING__GATE_SECRET: Input should be a valid string" in result.output
    assert "invalid setting HIE_AUTH__CLIENT_SECRET: Input should be a valid string" in result.output
    assert "987654321" not in result.output and "24681357" not in result.output


def test_unparsable_json_names_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HIE_IMAGING__MRN_SYSTEMS", "not json")
    with pytest.raises(InvalidSettings) as caught:
        settings_from_env()
    (problem,) = caught.value.problems
    assert problem.startswith("invalid setting HIE_IMAGING__MRN_SYSTEMS: not valid JSON")


def test_env_name_follows_model_fields() -> None:
    assert env_name(("mllp", "processes")) == ("HIE_MLLP__PROCESSES", False)
    assert env_name(("imaging", "mrn_systems", "PID-3")) == ("HIE_IMAGING__MRN_SYSTEMS[PID-3]", False)
    assert env_name(("imaging", "orthanc_password")) == ("HIE_IMAGING__ORTHANC_PASSWORD", True)
    assert env_name(("auth", "client_secret")) == ("HIE_AUTH__CLIENT_SECRET", True)
