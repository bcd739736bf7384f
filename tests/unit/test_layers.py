"""The import layers (pyproject.toml's `[tool.importlinter]`, DESIGN.md's "Proposed layout").

`lint-imports` must keep the contract on this source tree, and must break it when a lower layer
imports a higher one, even inside a function, so that the check cannot pass vacuously.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")


def lint_imports(root: Path) -> subprocess.CompletedProcess:
    if not LINT_IMPORTS.exists():
        pytest.fail(
            f"{LINT_IMPORTS} is missing: install the dev extra (`make install`), which pins "
            "import-linter."
        )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(root / "src"), *sys.path])}
    return subprocess.run(
        [str(LINT_IMPORTS), "--no-cache", "--config", str(root / "pyproject.toml")],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_the_source_tree_keeps_its_layers():
    res = lint_imports(ROOT)
    out = res.stdout + res.stderr
    assert res.returncode == 0, out
    assert "Contracts: 2 kept, 0 broken." in out


def with_hidden_import(tmp_path: Path, module: str, statement: str) -> Path:
    """A copy of the tree where `module` (a path under src/ladder) imports inside a function,
    the way a cycle is usually hidden: it still counts."""
    shutil.copytree(ROOT / "src", tmp_path / "src", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    path = tmp_path / "src" / "ladder" / module
    body = f"\n\ndef _hidden():\n    {statement}\n"
    path.write_text(path.read_text(encoding="utf-8") + body, encoding="utf-8")
    return tmp_path


def test_an_upward_import_breaks_the_layers(tmp_path):
    res = lint_imports(
        with_hidden_import(
            tmp_path, "evaluation/metrics.py", "from ladder.climb import ClimbOptions"
        )
    )
    out = res.stdout + res.stderr
    assert res.returncode != 0, out
    assert "ladder.evaluation is not allowed to import ladder.climb" in out


def test_the_gateway_catalog_cannot_reach_back_to_build_time(tmp_path):
    """serve's own layers: the catalog that request time reads imports no run resolution (the
    old catalog <-> runs cycle) - not even lazily, inside a function."""
    res = lint_imports(
        with_hidden_import(tmp_path, "serve/catalog.py", "from ladder.serve.runs import from_run")
    )
    out = res.stdout + res.stderr
    assert res.returncode != 0, out
    assert "ladder.serve.catalog is not allowed to import ladder.serve.runs" in out


def test_registry_imports_nothing_it_registers():
    """The old circle (registry -> builtins -> every rung, kind and engine -> registry) is gone:
    the registry loads the built-ins through their entry point, by name."""
    res = subprocess.run(
        [
            sys.executable,
            "-c",
            "import grimp; g = grimp.build_graph('ladder'); "
            "print(sorted(g.find_modules_directly_imported_by('ladder.registry')))",
        ],
        env={**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), *sys.path])},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip() == "['ladder.errors']"
