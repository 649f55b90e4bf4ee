"""The ``mrtranslate`` command line: the parser, built from one module per command group, and
dispatch to the library.

Each module of this package registers its subcommands with ``set_defaults(func=...)``; there is
no hand-kept command table. Every usage or input error is reported as one line on stderr with
exit code 2, never a traceback.
"""

from __future__ import annotations

import argparse
import sys
import warnings
from collections.abc import Sequence

from mrtranslate import __version__
from mrtranslate.cli import bench, data, evaluate, models, perceptual, study
from mrtranslate.cli.parser import Parser, subcommands
from mrtranslate.errors import InputWarning, TrainingError, UsageError

GROUPS = (data, models, evaluate, study, bench, perceptual)


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(
        prog="mrtranslate",
        description="Translate brain MR images between T1w and T2w with GANs, and "
        "evaluate the translations (MAE, PSNR, MI, SSIM, figures, reports).",
    )
    parser.add_argument("--version", action="version", version=f"mrtranslate {__version__}")
    sub = subcommands(parser, "command")
    for group in GROUPS:
        group.register(sub)
    return parser


def _exit_distributed_worker(code: int) -> int:
    """End a torchrun worker without interpreter teardown.

    With gloo, a worker whose process group was already destroyed sometimes aborts in C++
    ("terminate called without an active exception") while the interpreter shuts down, about
    one run in ten here, after all results were written. Flushing and ``os._exit`` skips that
    teardown so a finished distributed run reports success.
    """
    import os

    if int(os.environ.get("WORLD_SIZE", "1")) > 1:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    return code


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the console script; returns the process exit code. An
    :class:`InputWarning` is shown as one ``mrtranslate: warning:`` line on stderr, other
    warnings as Python shows them."""
    with warnings.catch_warnings():
        python_way = warnings.showwarning

        def show(message, category, *args, **kwargs) -> None:
            if issubclass(category, InputWarning):
                print(f"mrtranslate: warning: {message}", file=sys.stderr, flush=True)
            else:
                python_way(message, category, *args, **kwargs)

        warnings.showwarning = show
        return _main(argv)


def _main(argv: Sequence[str] | None) -> int:
    try:
        args = build_parser().parse_args(argv)
        code = args.func(args)
        return _exit_distributed_worker(code) if args.command == "train" else code
    except UsageError as exc:
        print(f"mrtranslate: error: {exc}", file=sys.stderr)
        return 2
    except TrainingError as exc:
        print(f"mrtranslate: training stopped: {exc}", file=sys.stderr)
        return 1
    except OSError as exc:
        print(f"mrtranslate: error: {exc}", file=sys.stderr)
        return 2
    except MemoryError:
        print("mrtranslate: error: not enough memory for this input", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("mrtranslate: interrupted", file=sys.stderr)
        return 130
