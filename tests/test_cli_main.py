"""The command table that lets one command build only its own parsers."""

from __future__ import annotations

import argparse

import pytest

from bpfsign import cli as _cli


def _commands(parser: argparse.ArgumentParser) -> set[str]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return set(action.choices)
    raise AssertionError("no subcommands")


def test_command_table_matches_registered_commands() -> None:
    assert _commands(_cli.build_parser()) == set(_cli._COMMAND_AREA)


@pytest.mark.parametrize("command", sorted(_cli._COMMAND_AREA))
def test_each_command_builds_from_its_area_alone(command: str) -> None:
    areas = _cli._areas_for([command, "--json"])
    assert areas == (_cli._COMMAND_AREA[command],)
    assert command in _commands(_cli.build_parser(areas))


def test_help_and_unknown_commands_build_everything() -> None:
    assert _cli._areas_for(["--help"]) == _cli._AREAS
    assert _cli._areas_for(["bogus"]) == _cli._AREAS
    assert _cli._areas_for([]) == _cli._AREAS


def test_unknown_command_exits_2_naming_the_choices(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        _cli.main(["bogus"])
    assert exc.value.code == 2
    assert "invalid choice: 'bogus'" in capsys.readouterr().err
