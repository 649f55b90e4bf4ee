"""The shared parser class and argument helpers of the command line."""

from __future__ import annotations

import argparse

from mrtranslate.config import PRECISIONS
from mrtranslate.errors import UsageError

DEVICE_HELP = "auto (a GPU when available, else the CPU; default), cpu, cuda or cuda:N"


class Parser(argparse.ArgumentParser):
    """An ArgumentParser whose errors are one line and exit code 2."""

    def error(self, message: str) -> None:  # type: ignore[override]
        raise UsageError(f"{message} (see '{self.prog} --help')")


def subcommands(parser: argparse.ArgumentParser, dest: str) -> argparse._SubParsersAction:
    """Required subcommands of ``parser`` that use :class:`Parser` too."""
    return parser.add_subparsers(dest=dest, metavar="COMMAND", required=True, parser_class=Parser)


def image_size(text: str) -> tuple[int, int]:
    """``HxW`` (for example 304x256) -> (H, W)."""
    try:
        h, w = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"size must look like 304x256, got {text!r}") from None
    return h, w


def add_overrides(parser: argparse.ArgumentParser, what: str = "override a config key") -> None:
    """``--set KEY=VALUE`` (repeatable), collected in ``args.overrides``."""
    parser.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help=f"{what}, e.g. train.epochs=3 (repeatable; unknown keys and wrong types are rejected)",
    )


def add_device(parser: argparse.ArgumentParser, default: str | None = "auto") -> None:
    parser.add_argument("--device", default=default, help=DEVICE_HELP)


def add_precision(parser: argparse.ArgumentParser, default: str | None = None) -> None:
    parser.add_argument(
        "--precision",
        choices=PRECISIONS,
        default=default,
        help="auto (bf16 where natively fast, else fp32; the default), fp32 or bf16",
    )
