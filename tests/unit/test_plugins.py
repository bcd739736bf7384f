"""Built-ins and plugins through one door: the `ladder.plugins` entry points.

The example plugin (examples/plugin) is installed with pip into a folder of its own and used by
real `ladder` processes: `ladder plugins` lists it, a climb runs its rung. A broken plugin is
reported, undone and left out; a rung's family is what it declares.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import ROOT, write_classify_task
from ladder.registry import PluginRecord, Registries, _apply, rung_family

LADDER = str(Path(sys.executable).with_name("ladder"))


@pytest.fixture(scope="module")
def plugin_site(tmp_path_factory) -> Path:
    site = tmp_path_factory.mktemp("site")
    source = tmp_path_factory.mktemp("src") / "plugin"  # pip builds in the folder: not ours
    shutil.copytree(ROOT / "examples" / "plugin", source)
    res = subprocess.run(
        [
            *(sys.executable, "-m", "pip", "install", "-q", "--no-deps"),
            # the venv's setuptools builds it offline; without one pip fetches it from PyPI
            *(["--no-build-isolation"] if importlib.util.find_spec("setuptools") else []),
            *("--target", str(site), str(source)),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert res.returncode == 0, res.stderr[-2000:]
    return site


def ladder(*args, site: Path | None, cwd: Path, extra_path: Path | None = None):
    # this tree's Ladder, not whichever one the venv's `ladder` script was installed from
    path = [str(p) for p in (site, extra_path, ROOT / "src") if p is not None]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(path), "COLUMNS": "200"}
    return subprocess.run(
        [LADDER, *map(str, args)], capture_output=True, text=True, env=env, cwd=cwd, timeout=600
    )


def test_the_built_ins_load_through_their_entry_point():
    from ladder.registry import plugins

    ours = next(r for r in plugins() if r.value == "ladder.builtins:register")
    assert ours.error is None and "few-shot" in ours.added["rungs"]
    assert [rung_family(r) for r in ("zero-shot", "rag", "lora", "distill")] == [
        "prompt",
        "retrieve",
        "fine-tune",
        "fine-tune",
    ]
    assert rung_family("a-rung-nobody-installed") == "other"


def test_the_example_plugin_is_listed_and_its_rung_climbs(plugin_site, tmp_path):
    res = ladder("plugins", site=plugin_site, cwd=tmp_path)
    assert res.returncode == 0, res.stdout + res.stderr
    assert "keywords (other)" in res.stdout and "ladder-keywords 0.1.0" in res.stdout
    task = write_classify_task(tmp_path / "t", extra_yaml="model: fake\n")
    res = ladder(
        "climb",
        task,
        "--rungs",
        "keywords,zero-shot",
        "--all",
        "--runs",
        tmp_path / "runs",
        site=plugin_site,
        cwd=tmp_path,
    )
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    report = json.loads(next((tmp_path / "runs").rglob("report.json")).read_text())
    cards = {c["rung"]: c for c in report["scorecards"]}
    assert set(cards) == {"keywords", "zero-shot"}
    kw = cards["keywords"]
    assert kw["n"] == cards["zero-shot"]["n"]  # the same hold-out
    assert kw["metrics"]["accuracy"]["value"] > 0.5  # word counts separate the tiny task's labels
    kinds = {o["rung"]: o.get("kind") for o in report["decision"].get("options", [])}
    assert kinds.get("keywords", "prompt") != "fine-tune"


def broken_site(tmp_path: Path, value: str) -> Path:
    site = tmp_path / "broken"
    info = site / "broken_plugin-1.0.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: broken-plugin\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text(f"[ladder.plugins]\nbroken = {value}\n")
    (site / "broken_mod.py").write_text(
        "def register(regs):\n"
        "    class R:\n        name = 'half'\n        family = 'magic'\n"
        "        def skip_reason(self, ctx): return None\n        def prepare(self, ctx): ...\n"
        "    regs.rungs.register('half', R())\n"
    )
    return site


@pytest.mark.parametrize(
    ("value", "said"),
    [
        ("no_such_module:register", "ModuleNotFoundError"),
        ("broken_mod:register", "family 'magic'"),
    ],
)
def test_a_broken_plugin_is_named_undone_and_left_out(tmp_path, value, said):
    site = broken_site(tmp_path, value)
    res = ladder("plugins", site=None, extra_path=site, cwd=tmp_path)
    assert res.returncode == 1
    text = " ".join("".join(c for c in res.stdout if c not in "│┃┏┓┗┛━─┡┩└┘╇┳┻").split())
    assert "broken" in text and said in text and "failed" in text, text
    res = ladder("models", site=None, extra_path=site, cwd=tmp_path)
    assert res.returncode == 0  # Ladder runs on without it, and says so once
    assert "plugin 'broken'" in res.stderr and "failed to load" in res.stderr
    assert "pip uninstall broken-plugin" in res.stderr


def test_a_failing_registration_is_undone():
    regs = Registries()

    def hook(r):
        r.engines.register("half-engine", object())
        raise RuntimeError("boom")

    rec = _apply(regs, PluginRecord("p", "m:f"), hook, guard=True)
    assert rec.error == "RuntimeError: boom" and "half-engine" not in regs.engines
