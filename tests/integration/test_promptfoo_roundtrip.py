"""promptfoo itself (from npm) evaluates `ladder export promptfoo RUN` against the real gateway.

The gateway serves the run on loopback (the fake engine answers: the round trip, not the model,
is under test). promptfoo's pass count must equal what the gateway answers, scored by Ladder.
Offline: telemetry, sharing and update checks off; its state lives in the test's folder.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from serve_util import climb_fake, gateway

pytestmark = pytest.mark.integration

PROMPTFOO = "0.118.17"  # the newest release that runs on Debian's node 20 (0.119+ need node 22)
CACHE = Path(os.environ.get("LADDER_PROMPTFOO_DIR", f"~/.cache/ladder/promptfoo-{PROMPTFOO}"))


def promptfoo_bin() -> Path:
    """promptfoo's CLI from the cache folder `make promptfoo` installs with npm (`make test` does)."""
    if not (shutil.which("node") and shutil.which("npm")):
        pytest.skip("node/npm not found: install Debian's `nodejs npm` (apt) to run promptfoo")
    prefix = CACHE.expanduser()
    exe = prefix / "node_modules" / ".bin" / "promptfoo"
    hint = f"make promptfoo PROMPTFOO_DIR={prefix}"
    if not exe.exists():
        pytest.skip(f"promptfoo is not installed: {hint}")
    res = subprocess.run([str(exe), "--version"], capture_output=True, text=True, timeout=120)
    if res.returncode:
        pytest.skip(f"promptfoo does not start ({res.stderr[-300:]}); reinstall: {hint}")
    return exe


def test_promptfoo_eval_watches_the_served_winner(tmp_path, run_cli):
    from ladder.serve.catalog import ServeOptions

    exe = promptfoo_bin()
    served = climb_fake(tmp_path)
    with gateway(ServeOptions(run=served.run_id)) as g:
        cfg = tmp_path / "promptfooconfig.yaml"
        code, _, err = run_cli(
            "export", "promptfoo", served.run_id, "--out", cfg, "--base-url", g.url
        )
        assert code == 0, err
        tests = yaml.safe_load(cfg.read_text(encoding="utf-8"))["tests"]
        client = g.client()
        expected = sum(
            client.chat.completions.create(
                model="tiny", messages=[{"role": "user", "content": t["vars"]["input"]}]
            )
            .choices[0]
            .message.content
            == t["assert"][0]["value"]
            for t in tests
        )
        env = {
            **os.environ,
            "LADDER_API_KEY": g.key,
            "PROMPTFOO_DISABLE_TELEMETRY": "1",
            "PROMPTFOO_DISABLE_SHARING": "1",
            "PROMPTFOO_DISABLE_UPDATE": "1",
            "PROMPTFOO_CONFIG_DIR": str(tmp_path / "promptfoo-state"),
            "OPENAI_API_KEY": "unused",
        }
        out = tmp_path / "results.json"
        res = subprocess.run(
            [str(exe), "eval", "-c", str(cfg), "-o", str(out), "--no-cache", "--no-progress-bar"],
            capture_output=True,
            text=True,
            env=env,
            cwd=tmp_path,
            timeout=600,
        )
        assert out.exists(), res.stdout[-2000:] + res.stderr[-2000:]
    stats = json.loads(out.read_text(encoding="utf-8"))["results"]["stats"]
    assert stats["successes"] + stats["failures"] == len(tests), stats
    assert stats.get("errors", 0) == 0, stats
    assert stats["successes"] == expected, (stats, expected)
    # promptfoo's exit status: 0 when every test passed, 100 when some failed
    assert res.returncode == (0 if expected == len(tests) else 100), res.stderr[-2000:]
