"""The command line explains itself: every option has help (with its choices), descriptions
read as plain text, and `mocap --help` shows examples."""

import argparse

from mocap.cli import build_parser, main


def _parsers(parser, prefix="mocap"):
    yield prefix, parser
    for action in parser._actions:  # argparse keeps subparsers only here
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield from _parsers(sub, f"{prefix} {name}")


def test_every_option_has_help_and_shows_its_choices():
    seen = 0
    for prog, parser in _parsers(build_parser()):
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction | argparse._HelpAction | argparse._VersionAction):
                continue
            seen += 1
            assert action.help and action.help.strip(), f"{prog} {action.option_strings or action.dest}: no help"
            if action.choices and action.option_strings:
                text = parser.format_help()
                assert all(str(c) in text for c in action.choices), f"{prog} {action.option_strings}: choices hidden"
    assert seen > 80


def test_descriptions_have_no_rest_markup():
    for prog, parser in _parsers(build_parser()):
        text = parser.format_help()
        assert "``" not in text and ":func:" not in text and ":mod:" not in text, prog


def test_top_level_help_has_examples(capsys):
    assert main(["--help"]) == 0
    out = capsys.readouterr().out
    assert "examples:" in out and "mocap process" in out and "mocap config print" in out


def test_a_usage_error_is_one_line(capsys):
    assert main(["export", "t.npz"]) == 2  # --out missing
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--out" in err[0] and "mocap export --help" in err[0]
