"""The report's charts, each from `report.json` data: one function per chart, SVG strings out."""

from __future__ import annotations

from typing import Any

from ladder.economics import human, money
from ladder.report.svg import Axis, Plot, heatmap


def _pos(values: list[float], floor: float = 1e-9) -> float:
    """The smallest positive value (log axes cannot show zero)."""
    return min((v for v in values if v > 0), default=floor)


def pareto(data: dict[str, Any]) -> str:
    """Quality vs $ per 1k calls: the frontier joins the options no other beats on both."""
    m, cards = data["task"]["metric"], data["scorecards"]
    costs = [c["cost"]["per_1k_calls"] for c in cards]
    lo = _pos(costs)
    xs = [max(c, lo) for c in costs]
    vals = [c["metrics"][m] for c in cards]
    ymin = min([v["ci_low"] for v in vals] + [data["task"]["bar"] or 1.0])
    p = Plot(
        f"Quality vs cost: {m} against $ per 1k calls",
        Axis(lo / 2, max(xs) * 2, log=True),
        Axis(max(0.0, ymin - 0.05), min(1.0, max(v["ci_high"] for v in vals) + 0.05)),
        xlabel="$ per 1,000 calls (log scale)",
        ylabel=m,
        xfmt=lambda v: money(v),
    )
    frontier = sorted(
        (
            (x, v["value"])
            for x, v in zip(xs, vals)
            if not any(x2 <= x and v2["value"] > v["value"] for x2, v2 in zip(xs, vals))
        ),
    )
    if len(frontier) > 1:
        p.line([f[0] for f in frontier], [f[1] for f in frontier], 7, "Pareto frontier", dash=True)
    for i, (c, x, v) in enumerate(zip(cards, xs, vals)):
        tip = f"{c['rung']}: {m} {v['value']:.3f} [{v['ci_low']:.3f}, {v['ci_high']:.3f}], {money(c['cost']['per_1k_calls'])}/1k calls"
        p.point(x, v["value"], i, c["rung"], tip, err=(v["ci_low"], v["ci_high"]))
    if data["task"]["bar"] is not None:
        p.hline(data["task"]["bar"], f"bar {data['task']['bar']:.2f}")
    return p.render()


def break_even(data: dict[str, Any]) -> str:
    """Monthly cost vs calls per day for every option; circles mark the break-evens."""
    cc = data["cost_curves"]
    dpm = cc["days_per_month"]
    days = [v / dpm for v in cc["volumes_per_month"]]
    all_y = [y for ys in cc["monthly"].values() for y in ys]
    lo = _pos(all_y, 1e-6)
    p = Plot(
        "Total cost per month vs volume",
        Axis(days[0], days[-1], log=True),
        Axis(lo / 2, max([*all_y, lo * 10]) * 2, log=True),
        xlabel="calls per day (log scale)",
        ylabel="$ per month (log scale)",
        xfmt=human,
        yfmt=money,
    )
    for i, (rung, ys) in enumerate(cc["monthly"].items()):
        p.line(days, [max(y, lo / 2) for y in ys], i, rung, dash=rung not in cc["fine_tuned"])
    for r in data["decision"]["break_even"]:
        be = r["break_even_per_day"]
        if be and days[0] <= be <= days[-1]:
            y = r["per_call_prompted"] * be * dpm
            p.marker(be, max(y, lo / 2), f"{r['tuned']} = {r['prompted']} at {human(be)} calls/day")
    if cc["declared_per_month"]:
        p.vline(
            cc["declared_per_month"] / dpm, f"declared {human(cc['declared_per_month'] / dpm)}/day"
        )
    return p.render()


def latency(data: dict[str, Any]) -> str | None:
    """Every hold-out call's latency per rung (dots), with p50 and p95 ticks."""
    lat = {r: v for r, v in data["latency_ms"].items() if v}
    if not lat:
        return None
    rungs = list(lat)
    allv = [v for vs in lat.values() for v in vs]
    lo = _pos(allv, 1e-3)
    p = Plot(
        "Latency per call (hold-out)",
        Axis(lo / 2, max(allv) * 2, log=True),
        Axis(-0.7, len(rungs) - 0.3),
        xlabel="milliseconds waited per call (log scale)",
        xfmt=lambda v: f"{v:g}",
        height=90 + 46 * len(rungs),
        margin=(36, 20, 48, 96),
    )
    cards = {c["rung"]: c for c in data["scorecards"]}
    for i, r in enumerate(rungs):
        y = len(rungs) - 1 - i
        p.dots([max(v, lo) for v in lat[r]], y, i, f"{r}: {len(lat[r])} calls")
        for q in ("p50", "p95"):
            v = cards.get(r, {}).get("latency_ms", {}).get(q)
            if v:
                p.tick(max(v, lo), y, i, 12, f"{r} {q} {v:.0f} ms")
    return p.render(ylabels=[(len(rungs) - 1 - i, r) for i, r in enumerate(rungs)])


def data_curve(data: dict[str, Any]) -> str | None:
    """Hold-out quality vs training examples, from the fine-tuning rungs' curves."""
    curves = [
        (c["rung"], c["extras"]["data_curve"])
        for c in data["scorecards"]
        if c["extras"].get("data_curve")
    ]
    if not curves:
        return None
    pts = [p for _, cv in curves for p in cv]
    m = pts[0].get("metric", data["task"]["metric"])
    p = Plot(
        "Data sufficiency: quality vs training examples",
        Axis(
            min(q["examples"] for q in pts) / 1.5, max(q["examples"] for q in pts) * 1.5, log=True
        ),
        Axis(max(0.0, min(q.get("ci_low", q["value"]) for q in pts) - 0.05), 1.0),
        xlabel="training examples (log scale)",
        ylabel=m,
    )
    for i, (rung, cv) in enumerate(curves):
        cv = sorted(cv, key=lambda q: q["examples"])
        xs = [q["examples"] for q in cv]
        p.band(
            xs,
            [q.get("ci_low", q["value"]) for q in cv],
            [q.get("ci_high", q["value"]) for q in cv],
            i,
        )
        p.line(xs, [q["value"] for q in cv], i, rung)
    if data["task"]["bar"] is not None:
        p.hline(data["task"]["bar"], f"bar {data['task']['bar']:.2f}")
    return p.render()


def hybrid(data: dict[str, Any]) -> str | None:
    """Blended quality vs the share of calls routed to the large model."""
    h = data["decision"].get("hybrid")
    if not h:
        return None
    rows = h["curve"]
    p = Plot(
        f"Hybrid: {h['small']} with {h['large']} for low-confidence calls",
        Axis(0.0, 1.0),
        Axis(
            max(0.0, min(r["quality"] for r in rows) - 0.05),
            min(1.0, max(r["quality"] for r in rows) + 0.05),
        ),
        xlabel=f"share of calls routed to {h['large']}",
        ylabel=h["metric"],
        xfmt=lambda v: f"{100 * v:.0f}%",
    )
    p.line([r["share_to_large"] for r in rows], [r["quality"] for r in rows], 0, "blended quality")
    p.marker(h["share_to_large"], h["quality"], f"chosen: threshold {h['threshold']:.2f}")
    if data["task"]["bar"] is not None:
        p.hline(data["task"]["bar"], f"bar {data['task']['bar']:.2f}")
    return p.render()


def confusions(data: dict[str, Any]) -> list[str]:
    out = []
    for c in data["scorecards"]:
        cm = c.get("confusion")
        if cm:
            out.append(
                heatmap(
                    f"{c['rung']}: confusion (rows: gold)",
                    cm["matrix"],
                    cm["labels"],
                    cm["columns"],
                )
            )
    return out


def all_charts(data: dict[str, Any]) -> dict[str, Any]:
    return {
        "pareto": pareto(data),
        "break_even": break_even(data),
        "latency": latency(data),
        "data_curve": data_curve(data),
        "hybrid": hybrid(data),
        "confusions": confusions(data),
    }
