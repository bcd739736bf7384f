"""The report: `report.json` (everything, as data) and `report.html` (one offline file).

`finalize` runs when a climb ends: from the climb's own task, data and scorecards it prices
every scorecard, stores the priced scorecards, decides, and writes both files into the run
folder atomically (the climb then writes `run.json` once, with the decision). `render_run` re-renders any
stored run (`ladder report RUN`), re-pricing it with the price book as it is now.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ladder.dataset import Dataset
from ladder.evaluation.scorecard import Scorecard
from ladder.fsutil import atomic_write_json, atomic_write_text
from ladder.store.db import Store
from ladder.task import Task


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
    task: Task,
    dataset: Dataset,
    cards: list[Scorecard],
    price_files: Sequence[str | Path] = (),
) -> Outcome:
    """End of a climb: price the climb's own scorecards (in place), store them priced, decide,
    write the report. Nothing the climb holds is read back: not the task, nor the cards."""
    from ladder.prices import PriceError
    from ladder.report.build import build, climb_view

    try:
        view = climb_view(store, run_id, task, dataset, cards)
        data = build(store, run_id, price_files=price_files, view=view)
        j, h = write(Path(data["run"]["run_dir"]), data)
    except PriceError as exc:
        for card in cards:  # none half-priced: run.json keeps them as measured
            card.cost = None
        raise PriceError(
            f"{exc} Run {run_id} is stored: `ladder report {run_id}` prices and reports it once the price is there."
        ) from None
    for card in cards:
        store.save_scorecard(run_id, card.rung, "holdout", card.model_dump(mode="json"))
    return Outcome(data, j, h)
