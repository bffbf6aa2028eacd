"""The `cnn` application: the Typer app, one-line errors and the options several commands share.

Heavy modules (numba, the kernels) are imported inside the commands that need
them, so `cnn --help` and `cnn params` start without loading or compiling them.
"""

from __future__ import annotations

import functools
import sys
from typing import Optional

import typer
import typer.core

from ..errors import UserError

class OneLineErrors(typer.core.TyperGroup):
    """Option and argument errors as one line on stderr (exit 2), not a usage box."""

    def main(self, *args, **kwargs):
        kwargs["standalone_mode"] = False
        try:
            result = super().main(*args, **kwargs)
        except _CLICK_EXCEPTION as error:
            if type(error).__name__ == "NoArgsIsHelpError":  # bare `cnn train`: show its help
                print(error.format_message(), file=sys.stderr)
            else:
                context = getattr(error, "ctx", None)
                command = context.command_path if context is not None else "cnn"
                print(f"error: {command}: {error.format_message().rstrip('.')}; see '{command} --help'", file=sys.stderr)
            sys.exit(error.exit_code)
        except _CLICK_ABORT:
            print("aborted", file=sys.stderr)
            sys.exit(1)
        # Without standalone mode an explicit exit comes back as its code.
        sys.exit(result if isinstance(result, int) else 0)


# Typer may vendor its own click: find its classes through Typer's public ones.
_CLICK_EXCEPTION = next(c for c in typer.BadParameter.__mro__ if c.__name__ == "ClickException")
_CLICK_ABORT = typer.Abort

app = typer.Typer(
    cls=OneLineErrors,
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    help="Train and inspect convolutional networks (LeNet-5 on MNIST) with Numba kernels.",
)


def user_errors_exit_2(command):
    """Turn a UserError into one line on stderr and exit status 2 — never a traceback.

    Under it, the last-resort net (lastresort.py): an OSError, MemoryError, RecursionError
    or UnicodeError no check caught is one line too (exit 2); any other exception is a
    bug, reported in one line with its traceback in a log file."""
    name = "cnn " + command.__name__.rstrip("_")

    @functools.wraps(command)
    def wrapper(*args, **kwargs):
        from .. import lastresort

        lastresort.make_output_safe()
        lastresort.set_log_dir(None)  # crash logs go to the temp folder until a command names a run folder
        try:
            lastresort.check_path_arguments(kwargs)
            return command(*args, **kwargs)
        except UserError as error:
            _one_line(f"error: {error}")
            raise typer.Exit(code=error.exit_code)
        except (typer.Exit, _CLICK_EXCEPTION, _CLICK_ABORT, KeyboardInterrupt):
            raise
        except (OSError, MemoryError, RecursionError, UnicodeError) as error:
            _one_line("error: " + lastresort.describe_failure(name, error))
            raise typer.Exit(code=2)
        except Exception as error:
            _one_line("error: " + lastresort.report_bug(name, error))
            raise typer.Exit(code=lastresort.BUG_EXIT)

    return wrapper


def wide_console(width: int):
    """A Rich console for wide tables: the terminal's width, or `width` columns when
    the output goes to a file or pipe and COLUMNS does not say otherwise."""
    import os

    from rich.console import Console

    console = Console()
    if not console.is_terminal and "COLUMNS" not in os.environ:
        console = Console(width=width)
    return console


def _one_line(text: str) -> None:
    print(" ".join(text.splitlines()), file=sys.stderr)


DATA_DIR_HELP = ("Data folder (default: $CNN_DATA_DIR, else ./data): MNIST's files in it, other datasets' "
                 "in DIR/<dataset>/.")
DATASET_HELP = "mnist, fashion-mnist, kmnist, cifar10 or folder (overrides data.dataset)."
CKPT_DATASET_HELP = "The dataset the checkpoint was trained on (it knows it: only checked, a mismatch is refused)."


def dataset_option(help_text: str = CKPT_DATASET_HELP):
    return typer.Option(None, "--dataset", metavar="NAME", help=help_text)


def checked_dataset(name: Optional[str]) -> Optional[str]:
    """--dataset NAME as its registry key; an unknown name is one line with the nearest one."""
    if name is None:
        return None
    from ..spec.datasets import get_dataset

    return get_dataset(name).name


CONFIG_HELP = "A config YAML file, or the bare name of a shipped one (lenet5, lenet5-classic, caffe-lenet, fashion-lenet5, cifar10)."
