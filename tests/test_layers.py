"""``vtr.config`` is the package's lowest layer: every other module imports it, so it imports
nothing of ``vtr`` (checkpoints, models, precision, protocol), which would close an import cycle.
What loading needs from the layers above comes through the hooks ``vtr/__init__.py`` installs."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

CONFIG = Path(__file__).resolve().parents[1] / "src/vtr/config.py"


def _imports_of_vtr(node: ast.AST) -> bool:
    if isinstance(node, ast.ImportFrom):
        return node.level > 0 or (node.module or "").split(".")[0] == "vtr"
    return isinstance(node, ast.Import) and any(alias.name.split(".")[0] == "vtr" for alias in node.names)


def test_config_imports_nothing_of_vtr_not_even_inside_a_function():
    tree = ast.parse(CONFIG.read_text())
    assert [ast.unparse(node) for node in ast.walk(tree) if _imports_of_vtr(node)] == []


def test_importing_the_config_loads_no_other_vtr_module():
    code = "import json, sys, vtr.config; print(json.dumps(sorted(m for m in sys.modules if m.startswith('vtr'))))"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    assert json.loads(done.stdout) == ["vtr", "vtr.config"]
