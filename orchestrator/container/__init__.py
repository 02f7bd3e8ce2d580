"""Code that runs inside the test containers, on the cell's interpreter (3.10-3.15).

Modules here import only the standard library and never tagmatrix: they are
copied into the container as files and loaded there (e.g. ``pytest -p
tagmatrix_warnings``). The host reads their constants by importing them.
"""

from __future__ import annotations

from pathlib import Path

WARNINGS_PLUGIN = Path(__file__).with_name("tagmatrix_warnings.py")
WARNINGS_PLUGIN_NAME = "tagmatrix_warnings"  # the module name for `pytest -p`
