"""The report in real headless Chromium (Debian's package, driven by Playwright): every plot
renders, nothing is fetched from the network, the console stays clean; a screenshot is saved."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from report_run import demo_climb

pytestmark = pytest.mark.integration

CHROMIUM = os.environ.get("LADDER_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
SHOTS = Path(
    os.environ.get("LADDER_SCREENSHOTS") or Path(__file__).parents[2] / "build" / "screenshots"
)


@pytest.fixture(scope="module")
def browser():
    sync_api = pytest.importorskip("playwright.sync_api", reason="pip install playwright")
    if not Path(CHROMIUM).exists():
        pytest.fail(f"chromium not found at {CHROMIUM}: apt-get install -y chromium (.ci/run does)")
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        yield b
        b.close()


def test_report_renders_in_chromium(tmp_path, browser):
    res = demo_climb(tmp_path / "task")
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    problems, requests = [], []
    page.on(
        "console",
        lambda m: (
            problems.append(f"{m.type}: {m.text}") if m.type in ("error", "warning") else None
        ),
    )
    page.on("pageerror", lambda e: problems.append(f"pageerror: {e}"))
    page.on("request", lambda r: requests.append(r.url))
    page.goto(res.outcome.html_path.as_uri())
    page.wait_for_load_state("load")
    assert problems == []
    assert all(u.startswith(("file:", "data:")) for u in requests), requests

    plots = page.locator("svg.plot")
    assert plots.count() >= 7  # pareto, break-even, latency, data curve, hybrid, 3 confusions
    for i in range(plots.count()):
        box = plots.nth(i).bounding_box()
        assert box and box["width"] > 100 and box["height"] > 60
    for plot_id in ("plot-pareto", "plot-break-even", "plot-latency", "plot-data-curve"):
        marks = page.locator(
            f"#{plot_id} svg .series, #{plot_id} svg polyline, #{plot_id} svg circle"
        )
        assert marks.count() > 0, plot_id
    assert page.locator("#gates tr").count() == 6
    assert "Decision: fine-tune (tuned" in page.locator("#decision").inner_text()

    SHOTS.mkdir(parents=True, exist_ok=True)
    shot = SHOTS / "report.png"
    page.screenshot(path=str(shot), full_page=True)
    assert shot.stat().st_size > 50_000
    page.close()
