"""The framework's gates, in order, each answered from the run's evidence with its numbers.

1. Has prompting been exhausted?   best prompting rung below the bar, errors recurring across variants
2. Is the missing knowledge volatile?   the task says so, or RAG beats prompting significantly
3. Is there enough labelled data?   the data-sufficiency curve, else the split's counts
4. Is the task narrow?   scope: single-task says so; a shared or merged model by its forgetting
5. Does the volume pay?   break-even volume of the fine-tune vs the declared volume

Plus the signals the framework names: the prompt length the best prompt needs, and zero-shot
quality against the majority-class baseline.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from itertools import pairwise
from typing import Any

from ladder.economics import (
    DAYS_PER_MONTH,
    break_even,
    human,
    is_fine_tuned,
    option_of,
)
from ladder.evaluation.compare import find
from ladder.guard import MIN_HOLDOUT, MIN_TRAIN
from ladder.scenario import payback_days

LONG_PROMPT_TOKENS = 1000  # the framework: a spec of thousands of tokens is a reason to fine-tune
FORGETTING_TOLERANCE = 0.05  # adjacent-task loss may rise 5% before the task counts as not narrow
FLAT_GAIN = 0.02  # a curve gaining under 2 points over its last step has flattened


@dataclass
class Facts:
    """What the task declares and the run measured, besides the scorecards."""

    metric: str
    bar: float | None = None
    calls_per_day: float | None = None
    knowledge: str = "stable"
    documents: bool = False
    n_labels: int = 0
    split: dict[str, int] = field(default_factory=dict)
    amortize_months: float = 3.0
    bar_confidence: float = 0.95  # "meets the bar" means P(metric ≥ bar) ≥ this (bootstrap)
    scope: str = "single-task"  # task.yaml: single-task (adapter served only here) | shared
    merged: bool = False  # a fine-tune merged into the base weights serves as a shared model


def _family(cards: list, family: str) -> list:
    """The cards of rungs that declare this family (prompt, retrieve, fine-tune, other)."""
    from ladder.registry import rung_family

    return [c for c in cards if rung_family(c.rung) == family]


def _gate(n: int, name: str, answer: str, evidence: str, **numbers: Any) -> dict[str, Any]:
    return {"n": n, "name": name, "answer": answer, "evidence": evidence, "numbers": numbers}


def _v(card, f: Facts) -> float:
    return card.metrics[f.metric].value


def bar_verdict(card, f: Facts) -> dict[str, Any] | None:
    from ladder.evaluation.bar import verdict

    return None if f.bar is None else verdict(card, f.metric, f.bar, f.bar_confidence)


def meets(card, f: Facts) -> bool:
    """Meets the bar with the task's stated confidence, not only by its point estimate."""
    v = bar_verdict(card, f)
    return bool(v and v["met"])


def _best(cards: list, f: Facts):
    return max(cards, key=lambda c: (_v(c, f), -c.cost["per_call"]), default=None)


def _per_day(per_month_volume: float | None) -> float | None:
    return None if per_month_volume is None else per_month_volume / DAYS_PER_MONTH


# ---------------------------------------------------------------- the gates


def prompting_tried(cards: list) -> tuple[list[str], list[str]]:
    """What the prompting search tried (technique, on which rungs), and what applies but was not.

    Read from each prompting rung's dev selection, where every variant names its techniques.
    """
    prompting = _family(cards, "prompt")
    where: dict[str, list[str]] = {}
    demos: dict[str, set[str]] = {}
    for card in prompting:
        for sel in (card.selection or {}).values():
            for t in sel.get("techniques", []):
                if " demonstrations (" in t:
                    k, strategy = t.split(" demonstrations (")
                    demos.setdefault(k, set()).add(strategy.rstrip(")"))
                    t = "demonstrations"
                rungs = where.setdefault(t, [])
                if card.rung not in rungs:
                    rungs.append(card.rung)
    tried = []
    for t, rungs in where.items():
        if t == "demonstrations":
            ks = "; ".join(f"k={k}: {', '.join(sorted(v))}" for k, v in sorted(demos.items()))
            tried.append(f"demonstrations ({ks})")
        else:
            tried.append(f"{t} ({', '.join(rungs)})")
    untried = []
    scored = any((c.solution or {}).get("mode") == "score" for c in prompting)
    if "demonstrations" not in where:
        untried.append("demonstrations (the few-shot rung did not run)")
    elif len(demos) == 1:
        untried.append("other numbers of demonstrations (rungs.few-shot.k: [2, 8])")
    if "chain-of-thought" not in where:
        untried.append("chain-of-thought (rungs.zero-shot.chain_of_thought: true)")
    if "label list" in where and "label definitions" not in where:
        untried.append("label definitions (labels as `label: description` in task.yaml)")
    if scored and "calibration" not in where:
        untried.append("calibration (rungs.few-shot.calibrate: true)")
    return tried, untried


SURVIVES = 0.5  # a targeted variant keeps at least half the errors the others average


def _targets(category: str, f: Facts) -> str | None:
    """The technique that targets an error category, or None when every variant does."""
    if f.n_labels and " → " in category:
        return "explicit format" if category.endswith("(invalid answer)") else "calibration"
    return None


def _survival(row: dict[str, Any], selection: dict[str, Any], f: Facts, scored: bool):
    """('survives' | 'removed' | 'untested', the targeting variant, its count, the others' mean)."""
    technique = _targets(row["category"], f)
    per = row.get("per_variant") or {}
    if technique is None or not per:
        return "survives", None, None, None
    targeted = [v for v in per if technique in (selection.get(v) or {}).get("techniques", [])]
    others = [per[v] for v in per if v not in targeted]
    mean = sum(others) / len(others) if others else 0.0
    if not targeted:
        applies = technique != "calibration" or scored
        return ("untested" if applies else "survives"), None, None, mean
    best_v = min(targeted, key=lambda v: per[v])
    kept = per[best_v] >= max(2, SURVIVES * mean)
    return ("survives" if kept else "removed"), best_v, per[best_v], mean


def gate_prompting(cards: list, f: Facts) -> dict[str, Any]:
    best = _best(_family(cards, "prompt"), f)
    if best is None:
        return _gate(1, "prompting exhausted", "unknown", "no prompting rung was run")
    v = _v(best, f)
    mv = best.metrics[f.metric]
    ci = f" (95% CI [{mv.ci_low:.2f}, {mv.ci_high:.2f}])"  # every verdict with its interval
    tried, untried = prompting_tried(cards)
    listed = {"tried": tried, "not_tried": untried}
    said = "; tried: " + ", ".join(tried) if tried else ""
    if untried:
        said += "; not tried: " + ", ".join(untried)
    if f.bar is None:
        return _gate(
            1,
            "prompting exhausted",
            "unknown",
            f"no bar declared; best prompt {best.rung} {v:.2f}{ci}",
            **listed,
        )
    if v >= f.bar:
        shown = (
            ""
            if meets(best, f)
            else f" (by the point estimate, not shown at {100 * f.bar_confidence:.0f}%)"
        )
        return _gate(
            1,
            "prompting exhausted",
            "no",
            f"{best.rung} reaches {v:.2f} ≥ bar {f.bar:.2f}{ci}{shown}",
            best=best.rung,
            value=v,
            **listed,
        )
    fa = best.failure_analysis or {}
    rec = [r for r in fa.get("categories", []) if r.get("recurring")]
    below = f"best prompt {best.rung} {v:.2f} < bar {f.bar:.2f}{ci}"
    if not rec:
        ev = f"{below}, but no error recurs across prompt variants: rewording may still help{said}"
        return _gate(1, "prompting exhausted", "unclear", ev, best=best.rung, value=v, **listed)
    scored = (best.solution or {}).get("mode") == "score"
    sel = best.selection or {}
    fates = [(r, *_survival(r, sel, f, scored)) for r in rec]
    survivors = [x for x in fates if x[1] == "survives"]
    removed = [x for x in fates if x[1] == "removed"]
    untested = [x for x in fates if x[1] == "untested"]
    nums = dict(
        best=best.rung,
        value=v,
        recurring=len(rec),
        surviving=len(survivors),
        removed=[r["category"] for r, *_ in removed],
        untested=[r["category"] for r, *_ in untested],
        **listed,
    )
    gone = ""
    if removed:
        r, _, var, n, mean = removed[0]
        more = f" (+{len(removed) - 1} more)" if len(removed) > 1 else ""
        gone = (
            f'; "{r["category"]}" is a bias calibration removes ({mean:.1f} → {n} in '
            f"{var}){more}, not a ceiling"
        )
    if survivors:
        top, _, var, n, _ = survivors[0]
        more = f" (+{len(survivors) - 1} more)" if len(survivors) > 1 else ""
        targeted = f", {n} in {var}, which targets it" if var else ""
        ev = (
            f'{below}; "{top["category"]}" errors recur in {top["variants_with"]}/'
            f"{fa['variants']} variants{targeted}{more}{gone}{said}"
        )
        return _gate(1, "prompting exhausted", "yes", ev, **nums)
    if untested:
        top = untested[0][0]
        tech = _targets(top["category"], f)
        ev = (
            f'{below}; "{top["category"]}" errors recur in {top["variants_with"]}/'
            f"{fa['variants']} variants, but no variant with {tech}, which targets them, "
            f"was tried{gone}{said}"
        )
        return _gate(1, "prompting exhausted", "unclear", ev, **nums)
    ev = f"{below}{gone}: prompting has room left (use the calibrated variant, then reword){said}"
    return _gate(1, "prompting exhausted", "no", ev, **nums)


def gate_knowledge(cards: list, f: Facts, comparisons: list) -> dict[str, Any]:
    if f.knowledge == "volatile":
        return _gate(2, "knowledge volatile", "yes", "task.yaml says knowledge: volatile")
    retr = _best(_family(cards, "retrieve"), f)
    prompt = _best(_family(cards, "prompt"), f)
    if retr is None or prompt is None:
        docs = "documents given but no retrieval rung run" if f.documents else "no documents"
        return _gate(2, "knowledge volatile", "no", f"no (task says stable; {docs})")
    c = find(comparisons, prompt.rung, retr.rung)
    if c is None:
        return _gate(
            2,
            "knowledge volatile",
            "unknown",
            f"{retr.rung} vs {prompt.rung}: no paired comparison",
        )
    wins = c["significant"] and c["diff"] > 0
    return _gate(
        2,
        "knowledge volatile",
        "yes" if wins else "no",
        c["sentence"],
        diff=c["diff"],
        p=c["p_value"],
    )


def gate_data(cards: list, f: Facts) -> dict[str, Any]:
    tuned = [c for c in cards if is_fine_tuned(c)]
    curve = next((c.extras["data_curve"] for c in tuned if c.extras.get("data_curve")), None)
    n_train, n_hold = f.split.get("train", 0), f.split.get("holdout", 0)
    if curve and len(curve) >= 2:
        pts = sorted(curve, key=lambda p: p["examples"])
        last, prev = pts[-1], pts[-2]
        gain = last["value"] - prev["value"]
        flat_at = next(
            (p["examples"] for p, q in pairwise(pts) if q["value"] - p["value"] < FLAT_GAIN),
            None,
        )
        if flat_at is not None and gain < FLAT_GAIN and f.bar is not None and last["value"] < f.bar:
            # flat far from the bar: more of the same data will not lift it; that is a rung that
            # cannot learn the task as posed (facts weights cannot hold, labels it cannot separate)
            others = _best([c for c in cards if not is_fine_tuned(c)], f)
            vs = f"; {others.rung} scores {_v(others, f):.2f}" if others is not None else ""
            ev = (
                f"curve flat at a low score ({last['value']:.2f} < bar {f.bar:.2f} from ~{flat_at} "
                f"examples{vs}): the rung cannot learn the task from more of this data, which is "
                "not the same as having enough"
            )
            return _gate(
                3, "enough data", "no", ev, flattens_at=flat_at, train=n_train, flat_low=True
            )
        if flat_at is not None and gain < FLAT_GAIN:
            ev = f"curve flattens at ~{flat_at} examples; you have {n_train}"
            return _gate(3, "enough data", "yes", ev, flattens_at=flat_at, train=n_train)
        meets = f.bar is not None and last["value"] >= f.bar
        ev = f"still rising: {last['value'] - prev['value']:+.2f} from {prev['examples']} to {last['examples']} examples"
        ev += "; more labels would help" if meets else "; label more before fine-tuning"
        return _gate(3, "enough data", "yes" if meets else "no", ev, gain=gain, train=n_train)
    enough = n_train >= MIN_TRAIN and n_hold >= MIN_HOLDOUT
    ev = f"train {n_train}, hold-out {n_hold} (rule of thumb ≥{MIN_TRAIN}/≥{MIN_HOLDOUT}; no data-sufficiency curve measured)"
    return _gate(3, "enough data", "yes" if enough else "no", ev, train=n_train, holdout=n_hold)


def gate_narrow(cards: list, f: Facts) -> dict[str, Any]:
    """Narrow by declaration for a single-task adapter; by the forgetting check when shared."""
    tuned = [c for c in cards if is_fine_tuned(c) and c.extras.get("forgetting")]
    merged = f.merged or any(is_fine_tuned(c) and c.extras.get("merged") for c in cards)
    shared = f.scope == "shared" or merged
    why = "scope: shared" if f.scope == "shared" else "the fine-tune is merged into the base model"
    if not tuned:
        if not shared:
            return _gate(
                4,
                "narrow task",
                "yes",
                "scope: single-task — the adapter is served only for this task, the base model "
                "is untouched (forgetting not measured)",
                scope=f.scope,
            )
        return _gate(
            4,
            "narrow task",
            "unknown",
            f"{why}, but forgetting was not measured: keep the fine-tuned rung's `forgetting: "
            "true` (the default, e.g. rungs.lora) and set `forgetting: {text: FILE}` to a text "
            "the shared model must keep serving",
            scope=f.scope,
            merged=merged,
        )
    fg = tuned[0].extras["forgetting"]
    rise = float(fg["relative_increase"])
    measured = f"forgetting on {_text_of(fg)}: {100 * rise:+.1f}%{_on_tokens(fg)}"
    numbers = {"relative_increase": rise, "tokens": fg.get("tokens"), "scope": f.scope}
    if not shared:
        ev = (
            "scope: single-task — the adapter is served only for this task, the base model is "
            f"untouched; {measured} (reported, not a criterion)"
        )
        return _gate(4, "narrow task", "yes", ev, **numbers)
    ok = rise <= FORGETTING_TOLERANCE
    tail = (
        f"within the {100 * FORGETTING_TOLERANCE:.0f}% tolerance"
        if ok
        else f"over the {100 * FORGETTING_TOLERANCE:.0f}% tolerance: as a shared model it "
        "degrades other tasks; an unmerged adapter served only for this task would not"
    )
    ev = f"{why}; {measured}, {tail}"
    return _gate(4, "narrow task", "yes" if ok else "no", ev, merged=merged, **numbers)


def _text_of(fg: dict[str, Any]) -> str:
    """Which text was measured: runs before `forgetting.text` stored a path or a long label."""
    label = str(fg.get("adjacent") or "an adjacent text")
    return "the bundled general-English text" if label.startswith("bundled ") else label


def _on_tokens(fg: dict[str, Any]) -> str:
    n = fg.get("tokens")
    return f" (one measurement on {n} tokens)" if n else " (one measurement)"


def break_evens(cards: list, f: Facts) -> list[dict[str, Any]]:
    """Break-even volume of every fine-tuned option against every other option."""
    rows = []
    for t in (c for c in cards if is_fine_tuned(c)):
        for p in (c for c in cards if not is_fine_tuned(c)):
            tuned, prompted = option_of(t.rung, t.cost), option_of(p.rung, p.cost)
            be = break_even(tuned, prompted, f.amortize_months)
            pay = payback_days(tuned, prompted, f.calls_per_day) if f.calls_per_day else None
            rows.append(
                {
                    "tuned": t.rung,
                    "prompted": p.rung,
                    "per_call_tuned": t.cost["per_call"],
                    "per_call_prompted": p.cost["per_call"],
                    "break_even_per_month": be,
                    "break_even_per_day": _per_day(be),
                    "payback_days": pay,
                    "prompted_meets_bar": meets(p, f),
                }
            )
    return rows


def gate_volume(
    cards: list, f: Facts, rows: list[dict[str, Any]], comparisons: list | None = None
) -> dict[str, Any]:
    tuned = _best([c for c in cards if is_fine_tuned(c)], f)
    if tuned is None or not rows:
        why = (
            "no fine-tuned rung was run, so there is nothing to repay"
            if tuned is None
            else "no prompted rung was run to compare the fine-tune's cost against"
        )
        return _gate(5, "volume pays", "unknown", why)
    mine = [r for r in rows if r["tuned"] == tuned.rung]
    rivals = [r for r in mine if r["prompted_meets_bar"]] or mine
    # against the costliest rival the fine-tune would replace: the one meeting the bar, else the best prompt
    best_p = _best([c for c in cards if c.rung in {r["prompted"] for r in rivals}], f)
    row = next(r for r in rivals if r["prompted"] == best_p.rung)
    c = find(comparisons or [], best_p.rung, tuned.rung) or {}
    if c.get("significant") and c.get("diff", 0) < 0:
        ev = (
            f"{tuned.rung} is significantly worse than {best_p.rung} ({c['sentence']}): "
            "a lower cost per call does not pay for the quality it loses"
        )
        return _gate(5, "volume pays", "no", ev, versus=best_p.rung, worse=True)
    be = row["break_even_per_day"]
    if be is None:
        ev = f"{tuned.rung} costs more per call than {best_p.rung}: it never pays back on cost"
        return _gate(5, "volume pays", "no", ev, versus=best_p.rung)
    vol = f.calls_per_day
    where = f"break-even vs {best_p.rung} at {human(be)} calls/day"
    if vol is None:
        return _gate(
            5,
            "volume pays",
            "unknown",
            f"{where}; no volume declared (volume: in task.yaml)",
            break_even_per_day=be,
        )
    ans = "yes" if vol >= be else "no"
    return _gate(
        5,
        "volume pays",
        ans,
        f"{where}; you declared {human(vol)}/day",
        break_even_per_day=be,
        versus=best_p.rung,
    )


# ---------------------------------------------------------------- signals


def signals(cards: list, f: Facts) -> dict[str, Any]:
    out: dict[str, Any] = {}
    best = _best(_family(cards, "prompt"), f)
    if best is not None:
        long = best.tokens_in >= LONG_PROMPT_TOKENS
        out["prompt_tokens"] = {
            "rung": best.rung,
            "tokens": best.tokens_in,
            "long": long,
            "text": f"{best.rung} needs {best.tokens_in:.0f} prompt tokens per call"
            + (
                "; a specification this long is itself a reason to evaluate fine-tuning"
                if long
                else ""
            ),
        }
    zs = next((c for c in cards if c.rung == "zero-shot"), None)
    if zs is not None:
        m = zs.metrics[f.metric]
        base = _majority(zs) if f.metric == "accuracy" else None
        above = base is not None and m.ci_low > base
        text = f"zero-shot {m.value:.2f} [{m.ci_low:.2f}, {m.ci_high:.2f}]"
        if base is not None:
            text += f" vs majority-class {base:.2f}: " + (
                "above it, so the task is within the base model's latent capability"
                if above
                else "not above it, so fine-tuning must teach the task itself"
            )
        out["zero_shot"] = {
            "value": m.value,
            "baseline": base,
            "above_baseline": above,
            "text": text,
        }
    return out


def _majority(card) -> float | None:
    cm = (card.confusion or {}).get("matrix")
    if not cm:
        return None
    support = [sum(row) for row in cm]
    return max(support) / sum(support) if sum(support) else None
