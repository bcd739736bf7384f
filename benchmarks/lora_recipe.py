"""The LoRA recipe: which settings reach today's quality with fewer training tokens.

Each recipe trains the lora rung on the same task, split and seed (a climb of `--rungs lora`,
no data curve, no forgetting check), and the adapter answers the same dev and hold-out items.
Recorded per recipe: training tokens, optimizer steps, epochs run (early stopping on dev loss
may stop sooner), training seconds, the dev loss after each epoch, dev accuracy, the hold-out
score with its 95% CI, and the paired comparisons with the baseline recipe on dev and on the
hold-out (McNemar and a paired bootstrap CI of the difference). A recipe has "the same quality"
when neither comparison shows a significant loss and its hold-out estimate lies inside the
baseline's own 95% CI.

    python benchmarks/lora_recipe.py                       # every recipe below, email-triage
    python benchmarks/lora_recipe.py --recipes today,bs4-lr2e-3-2ep --task examples/email-triage
    python benchmarks/lora_recipe.py --more --recipes lr3e-3-2ep  # add to the results file
    python benchmarks/lora_recipe.py --tag layers --recipes 3ep,top-half-3ep,top-half-lr2e-3-3ep

Writes benchmarks/results/lora_recipe-<task>[-<tag>].json with machine info. Run alone on the machine:
the seconds are wall clock on shared cores otherwise.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

ALL_LINEAR = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
# the baseline first: every other recipe is compared with it on the same hold-out items
RECIPES: dict[str, dict] = {
    "today": {"epochs": 4, "lr": 1e-3, "batch_size": 8},
    "2ep": {"epochs": 2, "lr": 1e-3, "batch_size": 8},
    "bs4-lr2e-3-2ep": {"epochs": 2, "lr": 2e-3, "batch_size": 4},
    "bs4-all-linear-2ep": {"epochs": 2, "lr": 1e-3, "batch_size": 4, "target_modules": ALL_LINEAR},
    "bs4-lr2e-3-1ep": {"epochs": 1, "lr": 2e-3, "batch_size": 4},
    "3ep": {"epochs": 3, "lr": 1e-3, "batch_size": 8},
    "lr3e-3-2ep": {"epochs": 2, "lr": 3e-3, "batch_size": 8},
    # adapters on the upper half of the layers: the backward pass stops at the lowest one
    "top-half-3ep": {"epochs": 3, "lr": 1e-3, "batch_size": 8, "layers": "top-half"},
    "top-half-lr2e-3-3ep": {"epochs": 3, "lr": 2e-3, "batch_size": 8, "layers": "top-half"},
}


TRAINING_KEYS = ("seconds", "tokens", "answer_tokens", "steps", "epochs", "best_epoch")
TRAINING_KEYS += ("tokens_per_s", "stopped", "dtype", "padding")


def machine() -> dict:
    from ladder import provenance

    return {
        **provenance.hardware(),
        "load_start": [round(x, 2) for x in os.getloadavg()],
        "date": time.strftime("%Y-%m-%d %H:%M:%S"),
    }


def train_one(task: Path, recipe: dict, runs: str) -> dict:
    from ladder.climb import ClimbOptions, climb
    from ladder.training.adapters import read_meta

    options = {"lora": {**recipe, "data_curve": None, "forgetting": False}}
    t0 = time.perf_counter()
    res = climb(task, ClimbOptions(rungs=["lora"], all_rungs=True, runs_dir=runs, options=options))
    wall = time.perf_counter() - t0
    card = res.scorecards[0]
    meta = read_meta(Path(card.extras["adapter"]["path"]))
    t = meta["training"]
    m = card.metrics[card.primary_metric]
    return {
        "recipe": recipe,
        "run_id": res.run_id,
        "variant": card.variant,
        "wall_s": round(wall, 1),
        "phases_s": {p: round(s, 1) for p, s in res.phases.get("lora", {}).items()},
        "training": {k: t[k] for k in TRAINING_KEYS},
        "dev_loss": [h["dev_loss"] for h in t["history"]],
        "dev": meta["scores"]["dev"],
        "holdout": {"value": round(m.value, 4), "ci": [round(m.ci_low, 4), round(m.ci_high, 4)]},
        "n": card.n,
        "metric": card.primary_metric,
    }


def paired(task, ds, store, base: dict, other: dict) -> dict:
    """other minus base on dev and on the hold-out, paired item by item."""
    from ladder.evaluation.compare import compare

    def preds(row: dict, split: str, items) -> list:
        got = store.predictions(row["run_id"], "lora", row["variant"], split)
        return [got[e.id] for e in items]

    out: dict = {}
    for split, items in (("dev", ds.dev), ("holdout", ds.holdout)):
        a, b = preds(base, split, items), preds(other, split, items)
        c = compare(task, items, a, b, base["metric"], names=("base", "new"))
        out[split] = {
            "diff": round(c["diff"], 4),
            "ci": [round(c["ci_low"], 4), round(c["ci_high"], 4)],
            "p": round(c["p_value"], 4),
            "test": c["test"],
            "significant": c["significant"],
        }
    low, high = base["holdout"]["ci"]
    # the same quality: no significant loss on dev or on the hold-out, and the hold-out
    # estimate inside the baseline's own 95% CI
    out["same_quality"] = (
        not (out["dev"]["significant"] and out["dev"]["diff"] < 0)
        and not (out["holdout"]["significant"] and out["holdout"]["diff"] < 0)
        and low <= other["holdout"]["value"] <= high
    )
    out["token_ratio"] = round(other["training"]["tokens"] / base["training"]["tokens"], 3)
    out["seconds_ratio"] = round(other["training"]["seconds"] / base["training"]["seconds"], 3)
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--task", default=str(ROOT / "examples/email-triage"))
    ap.add_argument(
        "--recipes", default=",".join(RECIPES), help="names from RECIPES, baseline first"
    )
    ap.add_argument("--out", default=str(ROOT / "benchmarks/results"))
    ap.add_argument(
        "--tag", default="", help="results file lora_recipe-<task>-<tag>.json (a separate study)"
    )
    ap.add_argument(
        "--more",
        action="store_true",
        help="add to the results file: recipes already in it (same settings) are kept, and the "
        "others are compared with its baseline, from the run store it names",
    )
    args = ap.parse_args(argv)
    names = args.recipes.split(",")
    unknown = [n for n in names if n not in RECIPES]
    if unknown:
        ap.error(f"unknown recipe(s) {unknown}; known: {', '.join(RECIPES)}")
    task = Path(args.task)
    tag = f"-{args.tag}" if args.tag else ""
    path = Path(args.out) / f"lora_recipe-{task.name}{tag}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    out = {"task": task.name, "machine": machine(), "baseline": names[0], "recipes": {}}
    if args.more and path.exists():
        out = json.loads(path.read_text())
        if "runs_dir" not in out or not Path(out["runs_dir"]).is_dir():
            ap.error(f"--more: {path} names no run store that still exists; run without --more")
        names = [out["baseline"], *(n for n in names if n != out["baseline"])]
        runs = out["runs_dir"]
    else:
        runs = tempfile.mkdtemp(prefix="lora-recipe-")
    out["runs_dir"] = runs
    for name in names:
        if out["recipes"].get(name, {}).get("recipe") == RECIPES[name]:
            continue  # measured before (--more), with these settings
        print(f"== {name}: {RECIPES[name]}", flush=True)
        out["recipes"][name] = row = train_one(task, RECIPES[name], runs)
        print(json.dumps({name: row}, indent=1), flush=True)
        out["machine"]["load_end"] = [round(x, 2) for x in os.getloadavg()]
        path.write_text(json.dumps(out, indent=1) + "\n")  # each recipe kept as it finishes
    from ladder.dataset import load_dataset
    from ladder.store.db import Store
    from ladder.task import load_task

    loaded = load_task(task)
    ds, store, base = load_dataset(loaded), Store(runs), out["recipes"][names[0]]
    for row in out["recipes"].values():  # rows of an older results file: from the store
        row.setdefault("variant", store.scorecards(row["run_id"])[0]["variant"])
    for name, row in out["recipes"].items():  # every comparison, by today's rule
        if name != names[0]:
            row["vs_baseline"] = paired(loaded, ds, store, base, row)
    path.write_text(json.dumps(out, indent=1) + "\n")
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
