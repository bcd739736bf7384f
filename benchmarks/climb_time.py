"""Climb wall time, default schedule (racing + planner) vs `--schedule exhaustive`, in one run.

Tasks: the bundled email-triage and banking77-10 (the 10 most frequent intents of
../shared/datasets/banking77, 60 rows each: 600 rows). Each task climbs twice in fresh run
stores; the JSON holds machine info and, per schedule: wall seconds, seconds per rung and
phase, the plan, the decision, each rung's hold-out score with its CI and n, the dev choice, and
what a fine-tuning rung trained (epochs, the best one on dev, tokens, seconds).

    python benchmarks/climb_time.py [--rungs zero-shot,few-shot] [--tasks email-triage]
                                    [--limit N] [--budget 10m] [--model gemma-3-270m]

Writes benchmarks/results/climb_time[-<tasks>][-<rungs>][-limitN].json, after each climb. The
full run took 50 minutes on 2 cores (2026-12-03); `--tasks email-triage` about 22.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import tempfile
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_TASKS = "email-triage,banking77-10"
# ../shared next to the checkout (or next to the folder of worktrees)
BANKING = next(
    (
        p / "shared" / "datasets" / "banking77" / "train.csv"
        for p in (ROOT.parent, ROOT.parent.parent)
        if (p / "shared" / "datasets" / "banking77").is_dir()
    ),
    ROOT.parent / "shared" / "datasets" / "banking77" / "train.csv",
)


def banking_task(root: Path, per_label: int = 60, labels: int = 10) -> Path:
    """A classify task of the most frequent intents, `per_label` rows each, in file order."""
    with BANKING.open(newline="") as f:
        rows = list(csv.DictReader(f))
    top = [lab for lab, _ in Counter(r["category"] for r in rows).most_common(labels)]
    kept, seen = [], Counter()
    for i, r in enumerate(rows):
        if r["category"] in top and seen[r["category"]] < per_label:
            seen[r["category"]] += 1
            kept.append({"id": f"b{i:05d}", "text": r["text"], "label": r["category"]})
    root.mkdir(parents=True, exist_ok=True)
    with (root / "data.jsonl").open("w") as f:
        f.writelines(json.dumps(r) + "\n" for r in kept)
    (root / "task.yaml").write_text(
        "# python benchmarks/climb_time.py\n"
        "name: banking77-10\nkind: classify\n"
        "instructions: Classify the customer's banking question by its intent.\n"
        f"labels: [{', '.join(top)}]\n"
        "data: {path: data.jsonl, id: id, input: text, output: label}\n"
        "split: {train: 0.6, dev: 0.15, holdout: 0.25}\n"
        "bar: {metric: accuracy, threshold: 0.8}\nvolume: {calls_per_day: 50000}\n"
        "knowledge: stable\nmodel: gemma-3-270m\n"
    )
    return root


def climb_once(task: Path, schedule: str, args) -> dict:
    from ladder.climb import ClimbOptions, climb
    from ladder.planner import parse_budget

    opts = ClimbOptions(
        rungs=args.rungs.split(",") if args.rungs else None,
        all_rungs=True,
        limit=args.limit,
        model=args.model,
        runs_dir=tempfile.mkdtemp(prefix=f"climb-{schedule}-"),
        schedule=schedule,
        budget=parse_budget(args.budget) if args.budget and schedule == "race" else None,
    )
    t0 = time.perf_counter()
    res = climb(task, opts)
    wall = time.perf_counter() - t0
    return {
        "schedule": schedule,
        "wall_s": round(wall, 1),
        "phases_s": {r: {p: round(s, 1) for p, s in ph.items()} for r, ph in res.phases.items()},
        "plan": res.plan.describe() if res.plan else None,
        "decision": (res.outcome.decision or {}).get("recommendation") if res.outcome else None,
        "rungs": {c.rung: rung_row(c) for c in res.scorecards},
        "skipped": res.skipped,
    }


def rung_row(card) -> dict:
    m = card.metrics[card.primary_metric]
    sel = card.selection or {}
    row = {
        "metric": card.primary_metric,
        "holdout": round(m.value, 4),
        "ci": [round(m.ci_low, 4), round(m.ci_high, 4)],
        "n": card.n,
        "dev_choice": card.variant,
        "dev": {v: {"n": s.get("n"), "dropped": s.get("dropped")} for v, s in sel.items()},
    }
    trained = (card.extras or {}).get("training")
    if trained:  # what the schedule trained: epochs, the best one on dev, tokens and seconds
        keys = ("epochs", "best_epoch", "tokens", "seconds", "tokens_per_s", "stopped")
        row["training"] = {k: trained.get(k) for k in keys}
    return row


def compare(runs: dict) -> dict:
    """Speed-up and whether the default run agrees with the exhaustive one."""
    race, full = runs["race"], runs["exhaustive"]
    within = {
        r: abs(race["rungs"][r]["holdout"] - row["holdout"]) <= (row["ci"][1] - row["ci"][0]) / 2
        for r, row in full["rungs"].items()
        if r in race["rungs"]
    }
    return {
        "speedup": round(full["wall_s"] / max(race["wall_s"], 1e-9), 2),
        "same_decision": race["decision"] == full["decision"],
        "same_holdout_n": all(
            race["rungs"][r]["n"] == full["rungs"][r]["n"]
            for r in full["rungs"]
            if r in race["rungs"]
        ),
        "holdout_within_exhaustive_ci": within,
        "same_dev_choice": {
            r: race["rungs"][r]["dev_choice"] == row["dev_choice"]
            for r, row in full["rungs"].items()
            if r in race["rungs"]
        },
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--tasks", default=DEFAULT_TASKS)
    ap.add_argument("--rungs", default=None, help="comma-separated rungs (default: all)")
    ap.add_argument("--limit", type=int, default=None, help="first N dev/holdout examples")
    ap.add_argument("--budget", default=None, help="--budget for the default-schedule climb")
    ap.add_argument("--model", default=None, help="model for the prompting rungs")
    ap.add_argument("--out", default=str(ROOT / "benchmarks/results"))
    args = ap.parse_args()

    from ladder import provenance

    tasks = {
        "email-triage": lambda: ROOT / "examples/email-triage",
        "banking77-10": lambda: banking_task(Path(tempfile.mkdtemp()) / "banking77-10"),
    }
    from ladder.engines import numerics

    chosen = numerics.choose("cpu", "auto")
    machine = {
        **provenance.hardware(),
        "bf16_flags": numerics.machine("cpu").get("bf16_flags"),
        "dtype_by_phase": chosen.phases,  # what a climb computes in here (--dtype auto)
        "load_start": [round(x, 2) for x in os.getloadavg()],
        "date": time.strftime("%Y-%m-%d %H:%M:%S"),
    }
    out: dict = {"machine": machine, "args": vars(args), "tasks": {}}
    tag = (f"-{args.rungs.replace(',', '+')}" if args.rungs else "") + (
        f"-limit{args.limit}" if args.limit else ""
    )
    if args.tasks != DEFAULT_TASKS:
        tag = f"-{args.tasks.replace(',', '+')}{tag}"
    path = Path(args.out) / f"climb_time{tag}.json"
    for name in args.tasks.split(","):
        task = tasks[name]()
        runs: dict = {}
        for schedule in ("race", "exhaustive"):
            runs[schedule] = climb_once(task, schedule, args)
            out["tasks"][name] = dict(runs)
            path.write_text(json.dumps(out, indent=2) + "\n")  # kept as each climb finishes
        out["tasks"][name]["comparison"] = compare(runs)
        print(name, json.dumps(out["tasks"][name]["comparison"]), flush=True)
    out["machine"]["load_end"] = [round(x, 2) for x in os.getloadavg()]
    path.write_text(json.dumps(out, indent=2) + "\n")
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
