"""The ``kdran`` console script: every subcommand has help, and building it never loads torch."""

from __future__ import annotations

import argparse
import subprocess
import sys

import pytest

from kdran.cli import build_parser, main


def _subcommands(parser: argparse.ArgumentParser, prefix: tuple[str, ...] = ()
                 ) -> list[tuple[str, ...]]:
    found = []
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                found.append((*prefix, name))
                found += _subcommands(sub, (*prefix, name))
    return found


def test_every_subcommand_has_help(capsys: pytest.CaptureFixture[str]) -> None:
    commands = _subcommands(build_parser())
    assert ("bench", "accuracy") in commands
    for command in commands:
        with pytest.raises(SystemExit) as exit_info:
            main([*command, "--help"])
        assert exit_info.value.code == 0
        out = capsys.readouterr().out
        assert "usage: kdran " + " ".join(command) in out


def test_building_the_parser_imports_nothing_heavy() -> None:
    """``kdran --help`` must not load torch, ONNX Runtime, river (scipy) or the ASN.1 codecs:
    each costs from 0.2 s (pycrate/asn1tools) to seconds on a small machine."""
    code = ("import sys; from kdran.cli import build_parser; build_parser(); "
            "heavy = [m for m in ('torch', 'sionna', 'onnxruntime', 'river', 'scipy', "
            "'pycrate_asn1rt', 'asn1tools') if m in sys.modules]; "
            "assert not heavy, heavy")
    subprocess.run([sys.executable, "-c", code], check=True)
