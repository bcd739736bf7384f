"""The decision: gates (`gates.py`), then the recommendation, its reasons, what would change it.

The recommendation is the cheapest option meeting the bar at the declared volume (fine-tunes set
aside when the knowledge is volatile or, shared, they forget too much), or the hybrid when routing the
small model's low-confidence calls to the large one meets the bar for less. Pure: scorecards
(priced) and facts in, a JSON-ready dict out.
"""

from __future__ import annotations

from typing import Any

from ladder.decide.gates import (
    Facts,
    _best,
    _v,
    bar_verdict,
    break_evens,
    gate_data,
    gate_knowledge,
    gate_narrow,
    gate_prompting,
    gate_volume,
    signals,
)
from ladder.decide.gates import meets as meets_bar
from ladder.economics import human, is_fine_tuned, money, monthly_cost, option_of, per_month
from ladder.evaluation.compare import find

__all__ = ["Facts", "decide", "hybrid_pair"]


# ---------------------------------------------------------------- the recommendation


def _kind_of(card) -> str:
    if is_fine_tuned(card):
        return "fine-tune"
    from ladder.registry import rung_family

    return "retrieve" if rung_family(card.rung) == "retrieve" else "prompt"


def _monthly(card, f: Facts) -> float:
    """$ per month at the declared volume (per call when no volume is declared)."""
    if f.calls_per_day is None:
        return card.cost["per_call"]
    return monthly_cost(
        option_of(card.rung, card.cost), per_month(f.calls_per_day), f.amortize_months
    )


def _eligible(cards: list, f: Facts, gates: dict[int, dict]) -> tuple[list, list[str]]:
    """Options meeting the bar; fine-tunes drop out when knowledge is volatile or gate 4 says no."""
    meets = [c for c in cards if meets_bar(c, f)]
    notes = []
    blocked = [
        g
        for g in gates.values()
        if (g["n"] == 2 and g["answer"] == "yes") or (g["n"] == 4 and g["answer"] == "no")
    ]
    if blocked and any(not is_fine_tuned(c) for c in meets):
        dropped = [c.rung for c in meets if is_fine_tuned(c)]
        if dropped:
            notes.append(
                f"{', '.join(dropped)} set aside: {'; '.join(g['evidence'] for g in blocked)}"
            )
        meets = [c for c in meets if not is_fine_tuned(c)]
    return meets, notes


def _pick(
    cards: list, f: Facts, gates: dict, comparisons: list, hybrid: dict | None
) -> dict[str, Any]:
    meets, notes = _eligible(cards, f, gates)
    v = (hybrid or {}).get("verdict")
    if v and v["point_reached"] and not v["met"]:  # not a recommendation, but worth knowing
        notes.append(v["text"])
    if meets:
        card = min(meets, key=lambda c: (_monthly(c, f), -_v(c, f)))
        rec = {"rung": card.rung, "kind": _kind_of(card), "meets_bar": True, "notes": notes}
        if hybrid and hybrid["meets_bar"] and _hybrid_monthly(hybrid, f) < _monthly(card, f):
            rec = {"rung": "hybrid", "kind": "hybrid", "meets_bar": True, "notes": notes}
        return rec
    if f.bar is not None and hybrid and hybrid["meets_bar"]:
        return {"rung": "hybrid", "kind": "hybrid", "meets_bar": True, "notes": notes}
    best = _best(cards, f)
    # without a bar: the cheapest option not significantly worse than the best
    peers = [best] + [
        c
        for c in cards
        if c is not best and not (find(comparisons, c.rung, best.rung) or {}).get("significant")
    ]
    card = min(peers, key=lambda c: (_monthly(c, f), -_v(c, f))) if f.bar is None else best
    return {
        "rung": card.rung,
        "kind": _kind_of(card),
        "meets_bar": f.bar is None and None,
        "notes": notes,
    }


def _hybrid_monthly(h: dict, f: Facts) -> float:
    return h["per_call"] * (per_month(f.calls_per_day) if f.calls_per_day else 1.0) + h.get(
        "fixed", 0.0
    )


def _tentative(cards: list) -> list[str]:
    """A decision on a small hold-out still stands, but says how wide its evidence is."""
    from ladder.guard import WIDE_CI, ci_half_width

    n = min((c.n for c in cards), default=0)
    if not n or ci_half_width(n) <= WIDE_CI:
        return []
    return [
        f"tentative: the hold-out has n={n}, so each score's 95% CI is up to ±{ci_half_width(n):.2f} "
        "wide; more hold-out rows would narrow it"
    ]


def _reasons(
    rec: dict, cards: list, f: Facts, gates: dict, comparisons: list, hybrid: dict | None
) -> list[str]:
    out = []
    if rec["kind"] == "hybrid":
        h = hybrid
        assert h is not None  # _pick recommends the hybrid only when there is one
        out.append(
            f"{h['small']} answers when its {h['signal']} ≥ {h['threshold']:.2f}; {h['large']} takes the other "
            f"{100 * h['share_to_large']:.0f}% of calls: {f.metric} {h['quality']:.2f} at {money(h['per_call'] * 1000)}/1k calls"
        )
        if h.get("verdict"):
            out.append(h["verdict"]["text"])
        return out + [g["evidence"] for g in gates.values() if g["answer"] == "yes"][:2]
    card = next(c for c in cards if c.rung == rec["rung"])
    at = (
        f" ({money(_monthly(card, f))}/month at {human(f.calls_per_day)} calls/day)"
        if f.calls_per_day
        else ""
    )
    v = bar_verdict(card, f)  # None only without a bar
    if rec["meets_bar"]:
        assert v is not None  # meeting the bar needs one
        out.append(f"{v['text']}; the cheapest option that does{at}")
    elif v is not None:
        pct = f"{100 * f.bar_confidence:.0f}%"
        out.append(f"no option is shown to meet the bar {f.bar:.2f} at {pct}; closest: {v['text']}")
    else:
        out.append(
            f"no bar declared: {card.rung} is the cheapest option not significantly worse than the best{at}"
        )
    others = [c for c in cards if c.rung != card.rung]
    rival = _best(others, f)
    if rival is not None:
        c = find(comparisons, rival.rung, card.rung)
        if c:
            out.append(c["sentence"])
    if rec["kind"] == "fine-tune":
        out += [g["evidence"] for g in gates.values() if g["n"] in (1, 5) and g["answer"] == "yes"]
    return out + rec["notes"]


def what_would_change(rec: dict, cards: list, f: Facts, rows: list[dict]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    if rec["kind"] == "hybrid":
        return [
            {
                "what": "quality",
                "text": "if the small model alone reached the bar, it would serve every call",
            }
        ]
    card = next(c for c in cards if c.rung == rec["rung"])
    if rec["kind"] == "fine-tune":
        mine = [r for r in rows if r["tuned"] == card.rung]
        if mine and not any(r["prompted_meets_bar"] for r in mine):
            out.append(
                _change(
                    "volume", "volume alone does not change it: no prompted option meets the bar"
                )
            )
        for r in mine:
            if r["prompted_meets_bar"] and r["break_even_per_day"]:
                out.append(
                    _change(
                        "volume",
                        f"below {human(r['break_even_per_day'])} calls/day, {r['prompted']} costs less",
                        r["break_even_per_day"],
                    )
                )
        if f.knowledge == "stable":
            out.append(
                _change(
                    "knowledge",
                    "if the labels or facts change monthly, retraining recurs: re-run with knowledge: volatile",
                )
            )
    else:
        for r in rows:
            if r["prompted"] == card.rung and r["break_even_per_day"] is not None:
                t = next(c for c in cards if c.rung == r["tuned"])
                if f.bar is not None and _v(t, f) >= f.bar:
                    out.append(
                        _change(
                            "volume",
                            f"above {human(r['break_even_per_day'])} calls/day, {r['tuned']} costs less",
                            r["break_even_per_day"],
                        )
                    )
    cheaper = [c for c in cards if c.rung != card.rung and _monthly(c, f) < _monthly(card, f)]
    if f.bar is not None and cheaper:
        c = _best(cheaper, f)
        gap = f.bar - _v(c, f)
        if gap > 0:
            out.append(
                _change(
                    "quality",
                    f"if {c.rung} gained {100 * gap:.0f} points (to the bar) it would be cheaper",
                    gap,
                )
            )
    rival = [
        c for c in cards if c.cost.get("basis") == "api" and c.rung != card.rung and f.calls_per_day
    ]
    for c in rival[:1]:
        ratio = _monthly(card, f) / _monthly(c, f) if _monthly(c, f) else None
        if ratio is not None and ratio < 1 and (f.bar is None or _v(c, f) >= f.bar):
            out.append(
                _change(
                    "price",
                    f"if {c.model} prices fell {100 * (1 - ratio):.0f}%, {c.rung} would cost the same",
                    ratio,
                )
            )
    return out


def _change(what: str, text: str, value: float | None = None) -> dict[str, Any]:
    return {"what": what, "text": text, "value": value}


def hybrid_pair(cards: list, f: Facts) -> tuple[str, str] | None:
    """(small, large): the cheapest fine-tune (else the cheapest option) answers first; the best
    option that costs more per call takes its low-confidence calls."""
    if len(cards) < 2 or any(c.cost is None for c in cards):
        return None
    tuned = [c for c in cards if is_fine_tuned(c)]
    small = min(tuned or cards, key=lambda c: c.cost["per_call"])
    large = _best([c for c in cards if c.cost["per_call"] > small.cost["per_call"]], f)
    return None if large is None else (small.rung, large.rung)


def basis(rec: dict, cards: list, f: Facts, comparisons: list) -> dict[str, Any]:
    """Why this option over its closest rival: quality (a significant win), cost (no significant
    quality difference: the cheaper one), both, or the bar (only it is shown to meet it)."""
    if rec["kind"] == "hybrid":
        return {"basis": "bar+cost", "rival": None, "text": "the hybrid meets the bar for less"}
    card = next(c for c in cards if c.rung == rec["rung"])
    rival = _best([c for c in cards if c.rung != card.rung], f)
    if rival is None:
        return {"basis": "only option", "rival": None, "text": f"{card.rung} is the only option"}
    c = find(comparisons, rival.rung, card.rung) or {}
    better = c.get("significant") and c.get("diff", 0) > 0
    worse = c.get("significant") and c.get("diff", 0) < 0
    cheaper = _monthly(card, f) < _monthly(rival, f)
    if better and cheaper:
        b, why = "both", f"significantly better than {rival.rung} and cheaper"
    elif better:
        b, why = "quality", f"significantly better than {rival.rung}"
    elif not worse and cheaper:
        b, why = "cost", f"no significant quality difference with {rival.rung}, and cheaper"
    elif meets_bar(card, f) and not meets_bar(rival, f):
        b, why = "bar", f"shown to meet the bar, which {rival.rung} is not"
    else:
        b, why = (
            "point estimate",
            f"the higher point estimate than {rival.rung}, not a significant win",
        )
    more = c.get("settle") or {}
    text = f"{why} ({c['sentence']})" if c.get("sentence") else why
    return {"basis": b, "rival": rival.rung, "text": text, "settle": more or None}


def decide(cards: list, f: Facts, comparisons: list, hybrid: dict | None = None) -> dict[str, Any]:
    """The gates, the recommendation with reasons, and what would change it."""
    rows = break_evens(cards, f)
    gates = {
        1: gate_prompting(cards, f),
        2: gate_knowledge(cards, f, comparisons),
        3: gate_data(cards, f),
        4: gate_narrow(cards, f),
        5: gate_volume(cards, f, rows, comparisons),
    }
    rec = _pick(cards, f, gates, comparisons, hybrid)
    return {
        "recommendation": rec["rung"],
        "kind": rec["kind"],
        "meets_bar": rec["meets_bar"],
        "reasons": _reasons(rec, cards, f, gates, comparisons, hybrid) + _tentative(cards),
        "basis": basis(rec, cards, f, comparisons),
        "bar_verdicts": [v for c in cards if (v := bar_verdict(c, f)) is not None],
        "gates": list(gates.values()),
        "signals": signals(cards, f),
        "break_even": rows,
        "hybrid": hybrid,
        "what_would_change": what_would_change(rec, cards, f, rows),
    }
