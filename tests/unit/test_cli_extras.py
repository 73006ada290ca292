"""Commands that need an optional extra say which one, in one line, when it is not installed."""

from __future__ import annotations

from click.testing import CliRunner

from grant_worker.worker.cli.extras import EXTRA_MODULES, missing_modules, needs_extra


def test_an_extra_is_missing_when_any_of_its_modules_is() -> None:
    absent = {"uvicorn"}
    found = missing_modules("dashboard", find=lambda name: None if name in absent else object())
    assert found == ["uvicorn"]
    assert missing_modules("emulator", find=lambda name: object()) == []


def test_the_stand_in_exits_2_with_one_line_naming_the_extra_whatever_its_arguments() -> None:
    command = needs_extra("dashboard", "dashboard", "The operator's web page")
    result = CliRunner().invoke(command, ["--host", "0.0.0.0", "--port", "8808"])
    assert result.exit_code == 2
    assert result.output.strip().splitlines() == [
        "error: grants dashboard needs the [dashboard] extra: pip install 'grant-worker[dashboard]'"
    ]


def test_every_extra_of_pyproject_has_its_modules_named() -> None:
    import tomllib
    from pathlib import Path

    pyproject = tomllib.loads((Path(__file__).parents[2] / "pyproject.toml").read_text())
    extras = set(pyproject["project"]["optional-dependencies"]) - {"test"}
    assert extras == set(EXTRA_MODULES)
