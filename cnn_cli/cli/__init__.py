"""The `cnn` command: Typer commands only — parse options, call the library, print.

Heavy modules (numba, the kernels) are imported inside the commands that need
them, so `cnn --help` and `cnn params` start without loading or compiling them.
app.py holds the application and what every command shares; each other module
registers a group of commands on it, in the order `cnn --help` lists them.
"""

from .app import app  # noqa: F401
from . import training, inspecting, lesson, tools  # noqa: F401,E402  (importing registers the commands)
