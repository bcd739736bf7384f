"""The report: `report.json` (everything, as data) and `report.html` (one offline file).

`finalize` runs when a climb ends: it prices every scorecard, stores the priced scorecards,
decides, and writes both files into the run folder atomically. `render_run` re-renders any
stored run (`ladder report RUN`), re-pricing it with the price book as it is now.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ladder.dataset import Dataset
from ladder.evaluation.scorecard import Scorecard
from ladder.fsutil import atomic_write_json, atomic_write_text
from ladder.store.db import Store


@dataclass
class Outcome:
    """What a finished climb prints: the decision, the headline comparison, the files."""

    data: dict[str, Any]
    json_path: Path
    html_path: Path

    @property
    def decision(self) -> dict[str, Any]:
        return self.data["decision"]


def write(run_dir: Path, data: dict[str, Any]) -> tuple[Path, Path]:
    from ladder.report.html import render

    html = render(data)  # render first: a failure leaves the previous files intact
    j = atomic_write_json(run_dir / "report.json", data)
    h = atomic_write_text(run_dir / "report.html", html)
    return j, h


def render_run(
    store: Store,
    run_id: str,
    *,
    price_files: Sequence[str | Path] = (),
    calls_per_day: float | None = None,
    out_dir: Path | None = None,
    dataset: Dataset | None = None,
) -> Outcome:
    """Build and write a run's report (into its run folder unless `out_dir`)."""
    from ladder.report.build import build

    data = build(
        store, run_id, dataset=dataset, price_files=price_files, calls_per_day=calls_per_day
    )
    j, h = write(Path(out_dir or data["run"]["run_dir"]), data)
    return Outcome(data, j, h)


def finalize(
    store: Store,
    run_id: str,
    cards: list[Scorecard],
    dataset: Dataset | None = None,
    price_files: Sequence[str | Path] = (),
) -> Outcome:
    """End of a climb: price, store the priced scorecards, decide, write the report."""
    from ladder.prices import PriceError

    try:
        out = render_run(store, run_id, price_files=price_files, dataset=dataset)
    except PriceError as exc:
        raise PriceError(
            f"{exc} Run {run_id} is stored: `ladder report {run_id}` prices and reports it once the price is there."
        ) from None
    priced = {c["rung"]: c for c in out.data["scorecards"]}
    for card in cards:
        card.cost = priced[card.rung]["cost"]
        store.save_scorecard(run_id, card.rung, "holdout", card.model_dump(mode="json"))
    _update_run_json(out, priced)
    return out


def _update_run_json(out: Outcome, priced: dict[str, dict]) -> None:
    """run.json keeps the priced scorecards and a one-line decision next to the report."""
    path = out.json_path.parent / "run.json"
    if not path.exists():
        return
    run = json.loads(path.read_text(encoding="utf-8"))
    run["scorecards"] = [priced.get(c["rung"], c) for c in run.get("scorecards", [])]
    d = out.decision
    run["decision"] = {"recommendation": d["recommendation"], "kind": d["kind"]}
    run["report"] = {"html": str(out.html_path), "json": str(out.json_path)}
    atomic_write_json(path, run)
