"""Small modules with one job: no file over ~450 lines, no function over ~80.

The exceptions are listed with the reason they were kept; a new one must be
added here, with its reason, or the test fails.
"""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[2] / "cnn_cli"
MAX_FILE_LINES = 480  # "about 450": a file a little over it reads in one sitting
MAX_FUNCTION_LINES = 80

FILE_EXCEPTIONS: dict[str, str] = {}
FUNCTION_EXCEPTIONS = {
    # Defines the PyTorch module classes inside a function, so that importing the
    # module never imports torch; each class is short, the function is their home.
    "reference/torch_model.py:_modules": "classes defined lazily so torch stays optional",
    # The config's whole top level in one readable pass: input, blocks, fc, sections,
    # each delegated; splitting it would scatter the order fields are checked in.
    "spec/validate.py:validate_config": "the top-level walk over a config, each part delegated",
}


def python_files():
    return sorted(p for p in PACKAGE.rglob("*.py") if "__pycache__" not in p.parts)


def test_no_file_is_too_long():
    long = {str(p.relative_to(PACKAGE)): n for p in python_files()
            if (n := len(p.read_text().splitlines())) > MAX_FILE_LINES}
    assert set(long) <= set(FILE_EXCEPTIONS), long


def test_no_function_is_too_long():
    long = {}
    for path in python_files():
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                lines = node.end_lineno - node.lineno + 1
                if lines > MAX_FUNCTION_LINES:
                    long[f"{path.relative_to(PACKAGE)}:{node.name}"] = lines
    assert set(long) <= set(FUNCTION_EXCEPTIONS), long


def test_the_exceptions_are_still_needed():
    """An exception that no longer applies goes from the list."""
    for key in FUNCTION_EXCEPTIONS:
        file, name = key.split(":")
        tree = ast.parse((PACKAGE / file).read_text())
        sizes = [n.end_lineno - n.lineno + 1 for n in ast.walk(tree)
                 if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef)) and n.name == name]
        assert sizes and max(sizes) > MAX_FUNCTION_LINES, key
