"""The command registry, typed options, and the per-command parser build."""

from __future__ import annotations

import argparse
import ast
import importlib
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from bpfsign import cli as _cli
from bpfsign.cli import _common, _options


def _subparsers(
    parser: argparse.ArgumentParser,
) -> argparse._SubParsersAction[argparse.ArgumentParser]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return action
    raise AssertionError("no subcommands")


def _commands(parser: argparse.ArgumentParser) -> set[str]:
    return set(_subparsers(parser).choices)


def _leaves(
    parser: argparse.ArgumentParser, path: tuple[str, ...] = ()
) -> Iterator[tuple[tuple[str, ...], argparse.ArgumentParser]]:
    """Every (sub)parser that runs a command, with the words that reach it."""
    if parser.get_default(_common.COMMAND_DEST) is not None:
        yield path, parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, child in action.choices.items():
                yield from _leaves(child, (*path, name))


def test_command_table_matches_registered_commands() -> None:
    assert _commands(_cli.build_parser()) == set(_cli.COMMANDS)
    assert len(set(_cli.COMMANDS)) == len(_cli.COMMANDS)


@pytest.mark.parametrize("command", _cli.COMMANDS)
def test_each_command_is_one_module_registering_only_itself(command: str) -> None:
    assert _cli._commands_for([command, "--json"]) == (command,)
    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers()
    importlib.import_module(f"bpfsign.cli.{command}").register(sub)
    assert set(sub.choices) == {command}


def test_help_and_unknown_commands_build_everything() -> None:
    assert _cli._commands_for(["--help"]) == _cli.COMMANDS
    assert _cli._commands_for(["bogus"]) == _cli.COMMANDS
    assert _cli._commands_for([]) == _cli.COMMANDS


def test_unknown_command_exits_2_naming_the_choices(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        _cli.main(["bogus"])
    assert exc.value.code == 2
    assert "invalid choice: 'bogus'" in capsys.readouterr().err


def test_every_option_record_field_is_a_parser_dest() -> None:
    """Each runnable parser's arguments are exactly its options record's fields."""
    leaves = list(_leaves(_cli.build_parser()))
    assert {path[0] for path, _ in leaves} == set(_cli.COMMANDS)
    for path, parser in leaves:
        options_cls, _handler = parser.get_default(_common.COMMAND_DEST)
        dests = {a.dest for a in parser._actions if not isinstance(a, argparse._HelpAction)}
        assert dests == set(_options.fields(options_cls)), path


def test_options_are_frozen_keyword_only_records() -> None:
    from bpfsign.cli.verify import VerifyOptions

    opts = VerifyOptions(trust=("c.crt",), files=("a.bin",))
    assert opts == VerifyOptions(trust=("c.crt",), files=("a.bin",), keyring=None, json=False)
    assert opts != VerifyOptions(trust=("c.crt",), files=("a.bin",), json=True)
    assert hash(opts) == hash(VerifyOptions(trust=("c.crt",), files=("a.bin",)))
    assert repr(opts) == (
        "VerifyOptions(trust=('c.crt',), files=('a.bin',), keyring=None, kernel='7.3', sig=None, "
        "json=False)"
    )
    with pytest.raises(AttributeError, match="VerifyOptions is frozen: cannot set json"):
        opts.json = True  # type: ignore[misc]
    with pytest.raises(TypeError, match=r"unknown fields \['bogus'\], missing fields \['files'\]"):
        VerifyOptions(trust=("c.crt",), bogus=1)  # type: ignore[call-arg]
    with pytest.raises(TypeError):
        VerifyOptions("c.crt", "a.bin")  # type: ignore[call-arg, arg-type]


def test_from_namespace_freezes_lists() -> None:
    from bpfsign.cli.verify import VerifyOptions

    ns = _cli.build_parser(["verify"]).parse_args(
        ["verify", "--trust", "a", "--trust", "b", "x", "y"]
    )
    opts = _options.from_namespace(VerifyOptions, ns)
    assert opts == VerifyOptions(trust=("a", "b"), files=("x", "y"))


def _all_parsers(
    parser: argparse.ArgumentParser, path: tuple[str, ...] = ()
) -> Iterator[tuple[tuple[str, ...], argparse.ArgumentParser]]:
    yield path, parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, child in action.choices.items():
                yield from _all_parsers(child, (*path, name))


def test_every_command_option_and_argument_has_help() -> None:
    missing = []
    for path, parser in _all_parsers(_cli.build_parser()):
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                # each (sub)command's one-line summary in its parent's --help
                missing += [
                    f"{' '.join((*path, choice.dest))}"
                    for choice in action._choices_actions
                    if not choice.help
                ]
            elif not action.help:
                name = "/".join(action.option_strings) or action.metavar or action.dest
                missing.append(f"bpfsign {' '.join(path)} {name}")
    assert missing == []


def test_help_of_every_command_renders(capsys: pytest.CaptureFixture[str]) -> None:
    for path, _parser in _all_parsers(_cli.build_parser()):
        with pytest.raises(SystemExit) as exc:
            _cli.main([*path, "--help"])
        assert exc.value.code == 0
        out = capsys.readouterr().out
        assert out.startswith(f"usage: {' '.join(('bpfsign', *path))}")


# -- library messages speak the library's language; the CLI adds its flags -----------

SRC = Path(_cli.__file__).resolve().parent.parent


def _library_strings() -> Iterator[tuple[str, int, str]]:
    """Every string constant of the library outside cli/ that is not a docstring."""
    for path in sorted(SRC.rglob("*.py")):
        if "cli" in path.relative_to(SRC).parts[:1]:
            continue
        tree = ast.parse(path.read_text(), str(path))
        docstrings = {
            id(node.body[0].value)
            for node in ast.walk(tree)
            if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef)
            and node.body
            and isinstance(node.body[0], ast.Expr)
            and isinstance(node.body[0].value, ast.Constant)
        }
        for node in ast.walk(tree):
            if not isinstance(node, ast.Constant) or id(node) in docstrings:
                continue
            if isinstance(node.value, str):
                yield str(path.relative_to(SRC)), node.lineno, node.value


def _cli_flags() -> set[str]:
    flags: set[str] = set()
    for _path, parser in _all_parsers(_cli.build_parser()):
        for action in parser._actions:
            flags.update(s for s in action.option_strings if s.startswith("--"))
    return flags - {"--help"}


def test_library_messages_name_no_cli_flags() -> None:
    flags = _cli_flags()
    assert {"--trust", "--unsigned", "--scheme", "--strict", "--keyring"} <= flags
    found = [
        f"{path}:{line}: {flag} in {text!r}"
        for path, line, text in _library_strings()
        for flag in flags
        if re.search(rf"(?<![\w-]){re.escape(flag)}(?![\w-])", text)
    ]
    assert found == []


def test_every_flag_hint_phrase_is_still_said_by_the_library() -> None:
    said = "\n".join(text for _path, _line, text in _library_strings())
    # a phrase may be split over implicit string concatenation: compare without the seams
    flat = re.sub(r"\s+", " ", said)
    missing = [phrase for phrase, _hint in _common.FLAG_HINTS if phrase not in flat]
    assert missing == []


def test_cli_text_adds_the_flag_after_the_advice() -> None:
    message = "no key matches: trust the signer's certificate, or verify against another keyring"
    assert _common.cli_text(message) == (
        "no key matches: trust the signer's certificate (--trust CERT), or verify against "
        "another keyring"
    )
    assert _common.cli_text("nothing to add") == "nothing to add"
