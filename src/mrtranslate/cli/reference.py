"""The command-line reference, generated from the argparse parsers themselves (the docs'
``reference/cli.md``, written by ``scripts/gen_docs.py``): every command, every option, its
default and its help text, so the reference cannot miss an option the code has."""

from __future__ import annotations

import argparse

from mrtranslate.cli.main import build_parser

HEADER = """# Command-line reference

Generated from the parsers by `python scripts/gen_docs.py` (a test fails when this page and the
code disagree). Every command also answers `--help`.
"""


def commands(parser: argparse.ArgumentParser, prefix: str = "mrtranslate"):
    """(name, parser) of every command and subcommand below ``parser``, depth first."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                full = f"{prefix} {name}"
                yield full, sub
                yield from commands(sub, full)


def options(parser: argparse.ArgumentParser) -> list[argparse.Action]:
    """The parser's own arguments (not --help, not the subcommand selector)."""
    return [
        a
        for a in parser._actions
        if not isinstance(a, argparse._HelpAction | argparse._SubParsersAction)
    ]


def _flag(action: argparse.Action) -> str:
    if not action.option_strings:
        return f"`{action.metavar or action.dest.upper()}`"
    names = ", ".join(f"`{o}`" for o in action.option_strings)
    if action.nargs == 0:
        return names
    metavar = action.metavar or (
        "{" + ",".join(map(str, action.choices)) + "}" if action.choices else action.dest.upper()
    )
    return f"{names} {metavar}"


def _help(action: argparse.Action) -> str:
    text = " ".join((action.help or "").split())
    if action.required:
        text += " (required)"
    return text.replace("|", "\\|") or " "


def cli_reference_markdown() -> str:
    """The whole reference page."""
    parts = [HEADER]
    for name, parser in commands(build_parser()):
        parts.append(f"## `{name}`\n")
        description = " ".join((parser.description or "").split())
        if description:
            parts.append(description + "\n")
        rows = [(_flag(a), _help(a)) for a in options(parser)]
        if rows:
            parts.append("| option | what it does |\n|---|---|")
            parts.append("\n".join(f"| {flag} | {text} |" for flag, text in rows) + "\n")
    return "\n".join(parts).rstrip() + "\n"
