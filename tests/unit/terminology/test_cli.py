"""`hie terminology load|unmapped|remap|export` against a migrated SQLite database."""

from __future__ import annotations

from pathlib import Path

import typer
from typer.testing import CliRunner

from ehr_store import SqlStore, StoreSettings
from hie_server import cli_terminology
from terminology import TerminologyService, local_system

HEADER = "source_system,source_code,source_display,target_system,target_code,target_display,equivalence\n"


def _app() -> typer.Typer:
    app = typer.Typer()
    app.command("noop")(lambda: None)  # a second command keeps `terminology` a sub-command group
    cli_terminology.register(app)
    return app


def test_load_unmapped_map_remap_export(sqlite_url: str, tmp_path: Path) -> None:
    runner, app = CliRunner(), _app()
    args = ["--database-url", sqlite_url]
    loaded = runner.invoke(app, ["terminology", "load", *args])
    assert loaded.exit_code == 0, loaded.output
    assert "created" in loaded.output

    store = SqlStore(StoreSettings(database_url=sqlite_url))
    try:
        service = TerminologyService(store)
        translator = service.translator()
        assert translator.translate_coding("QYRMYY", "L", "DX-CHEST", "胸部正位片") == []
        with store.unit_of_work() as uow:
            obs = {
                "resourceType": "Observation",
                "id": "x1",
                "status": "final",
                "code": {"coding": [{"system": local_system("QYRMYY", "L"), "code": "DX-CHEST"}]},
            }
            uow.resources.update("Observation", "x1", obs)
            service.persist_unmapped(uow.resources, translator.log)
            uow.commit()
    finally:
        store.close()

    listed = runner.invoke(app, ["terminology", "unmapped", "--source", "QYRMYY", *args])
    assert listed.exit_code == 0 and "DX-CHEST" in listed.output

    exported = runner.invoke(app, ["terminology", "export", "--source", "QYRMYY", *args])
    assert exported.exit_code == 0 and exported.output.startswith("source_system,source_code")
    csv_file = tmp_path / "QYRMYY.csv"
    csv_file.write_text(exported.output + "L,DX-CHEST,胸部正位片,LN,24648-8,,equivalent\n", encoding="utf-8")
    mapped = runner.invoke(
        app, ["terminology", "load", "--conceptmap", str(csv_file), "--source", "QYRMYY", *args]
    )
    assert mapped.exit_code == 0 and "version 2" in mapped.output, mapped.output

    remapped = runner.invoke(app, ["terminology", "remap", "--source", "QYRMYY", *args])
    assert remapped.exit_code == 0 and "1 resources updated" in remapped.output
    assert "no unmapped codes" in runner.invoke(app, ["terminology", "unmapped", *args]).output


def test_load_refuses_bad_csv_and_half_options(sqlite_url: str, tmp_path: Path) -> None:
    runner, app = CliRunner(), _app()
    bad = tmp_path / "bad.csv"
    bad.write_text(HEADER + "L,HGB,,LN,,,equivalent\n", encoding="utf-8")
    result = runner.invoke(
        app,
        ["terminology", "load", "--conceptmap", str(bad), "--source", "QYRMYY", "--database-url", sqlite_url],
    )
    assert result.exit_code == 1 and "line 2" in result.output
    half = runner.invoke(app, ["terminology", "load", "--conceptmap", str(bad), "--database-url", sqlite_url])
    assert half.exit_code == 1 and "go together" in half.output


def test_export_of_a_sender_without_a_map_lists_its_unmapped_codes(sqlite_url: str, tmp_path: Path) -> None:
    """export → fill in → load works from the first unmapped code (no ConceptMap yet)."""
    runner, app = CliRunner(), _app()
    args = ["--database-url", sqlite_url]
    assert runner.invoke(app, ["terminology", "load", *args]).exit_code == 0
    store = SqlStore(StoreSettings(database_url=sqlite_url))
    try:
        service = TerminologyService(store)
        translator = service.translator()
        for code, display in (("GLU-F", "空腹血糖"), ("HBA1C", "糖化血红蛋白")):
            assert translator.translate_coding("THZWSY", "L", code, display) == []
        with store.unit_of_work() as uow:
            service.persist_unmapped(uow.resources, translator.log)
            uow.commit()
    finally:
        store.close()

    exported = runner.invoke(app, ["terminology", "export", "--source", "THZWSY", *args])
    assert exported.exit_code == 0, exported.output
    lines = exported.output.splitlines()
    assert lines[0] + "\n" == HEADER
    assert sorted(line.split(",")[1:] for line in lines[1:]) == [
        ["GLU-F", "空腹血糖", "", "", "", ""],
        ["HBA1C", "糖化血红蛋白", "", "", "", ""],
    ]
    filled = [
        line.removesuffix(",,,,") + ",http://loinc.org,1558-6,Fasting glucose,equivalent"
        if ",GLU-F," in line
        else line
        for line in lines
    ]
    csv_file = tmp_path / "THZWSY.csv"
    csv_file.write_text("\n".join(filled) + "\n", encoding="utf-8")
    load = ["terminology", "load", "--conceptmap", str(csv_file), "--source", "THZWSY", *args]
    loaded = runner.invoke(app, load)
    assert loaded.exit_code == 0, loaded.output
    left = runner.invoke(app, ["terminology", "unmapped", "--source", "THZWSY", *args]).output
    assert "HBA1C" in left and "GLU-F" not in left  # the row left blank was skipped, not refused
    again = runner.invoke(app, ["terminology", "export", "--source", "THZWSY", *args]).output.splitlines()
    assert any(",GLU-F," in line and "1558-6" in line for line in again)
    assert any(line.endswith(",HBA1C,糖化血红蛋白,,,,") for line in again)


def test_export_of_an_unknown_sender_is_the_header(sqlite_url: str) -> None:
    runner, app = CliRunner(), _app()
    args = ["--source", "NOSUCH", "--database-url", sqlite_url]
    exported = runner.invoke(app, ["terminology", "export", *args])
    assert exported.exit_code == 0 and exported.output == HEADER
