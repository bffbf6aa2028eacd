"""The `cnn` command: Typer commands only — parse options, call the library, print.

Heavy modules (numba, the kernels) are imported inside the commands that need
them, so `cnn --help` and `cnn params` start without loading or compiling them.
"""

from __future__ import annotations

import functools
import sys
from pathlib import Path
from typing import List, Optional

import typer

from .errors import UserError

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    help="Train and inspect convolutional networks (LeNet-5 on MNIST) with Numba kernels.",
)


def user_errors_exit_2(command):
    """Turn a UserError into one line on stderr and exit status 2 — never a traceback."""

    @functools.wraps(command)
    def wrapper(*args, **kwargs):
        try:
            return command(*args, **kwargs)
        except UserError as error:
            print(f"error: {error}", file=sys.stderr)
            raise typer.Exit(code=UserError.exit_code)

    return wrapper


DATA_DIR_HELP = "Folder holding the MNIST files (default: $CNN_DATA_DIR, else ./data)."


@app.command()
@user_errors_exit_2
def download(
    data_dir: Optional[Path] = typer.Option(None, "--data-dir", help=DATA_DIR_HELP),
    mirror: List[str] = typer.Option(
        [], "--mirror", help="Extra mirror tried first (URL, file:// URL or folder); repeatable."
    ),
    force: bool = typer.Option(False, "--force", help="Fetch again even when valid files are present."),
    no_verify: bool = typer.Option(
        False, "--no-verify", help="Accept files whose MD5 differs from the official one (e.g. a class sample)."
    ),
    timeout: float = typer.Option(
        30.0, "--timeout", min=0.1, help="Seconds to wait for a connection and for each read before trying the next mirror."
    ),
):
    """Fetch the four MNIST files, check their MD5s and store them atomically."""
    from .download import download_mnist, resolve_data_dir

    folder = resolve_data_dir(data_dir)
    results = download_mnist(folder, mirrors=mirror, force=force, verify=not no_verify, timeout=timeout)
    fetched = sum(r.status == "fetched" for r in results.values())
    unofficial = [r.name for r in results.values() if not r.verified]
    note = f"; {len(unofficial)} not the official MNIST (accepted with --no-verify)" if unofficial else ""
    print(f"MNIST ready in {folder}: {fetched} fetched, {len(results) - fetched} already present{note}")


def main():  # pragma: no cover - console-script shim
    app()


if __name__ == "__main__":  # pragma: no cover
    app()
