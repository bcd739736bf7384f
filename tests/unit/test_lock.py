"""The dependency lock: constraints.txt pins everything, installs anywhere, and the check bites."""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
spec = importlib.util.spec_from_file_location("lock", ROOT / "scripts" / "lock.py")
lock = importlib.util.module_from_spec(spec)
spec.loader.exec_module(lock)


def test_lock_pins_every_line_with_no_local_paths():
    pins = lock.read_lock()
    assert pins["torch"] == "2.13.0" and "llama-cpp-python" in pins and "transformers" in pins
    for line in (ROOT / "constraints.txt").read_text().splitlines():
        if line and not line.startswith("#"):
            assert re.fullmatch(r"[a-z0-9-]+==[0-9][^\s+@]*", line), line
    assert "ladder-llm" not in pins


def test_check_reports_each_kind_of_difference():
    pins = {"a": "1.0", "b": "2.0", "c": "3.0"}
    have = {"a": "1.0", "b": "2.1", "d": "4.0"}
    assert lock.diff(pins, have) == [
        "b: installed 2.1, locked 2.0",
        "c==3.0: locked but not installed",
        "d==4.0: installed but not in the lock",
    ]
    assert lock.diff(pins, dict(pins)) == []


def test_a_malformed_lock_line_names_the_line(tmp_path):
    bad = tmp_path / "constraints.txt"
    bad.write_text("# lock\nnumpy>=1\n")
    try:
        lock.read_lock(bad)
    except SystemExit as exc:
        assert "constraints.txt:2" in str(exc) and "NAME==VERSION" in str(exc)
    else:
        raise AssertionError("a range in the lock must be refused")
