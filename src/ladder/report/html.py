"""Render `report.json` data as one self-contained HTML file: inline CSS and SVG, no script."""

from __future__ import annotations

import json
from importlib import resources
from typing import Any

from jinja2 import Environment, StrictUndefined

from ladder.economics import human, money
from ladder.report.charts import all_charts

TEMPLATE = "report.html.j2"


def decision_title(decision: dict[str, Any], bar: float | None) -> str:
    """'fine-tune (lora)', 'hybrid: lora, few-shot below margin 0.35', 'no rung meets the bar'."""
    kind, rec = decision["kind"], decision["recommendation"]
    if kind == "hybrid":
        h = decision["hybrid"]
        return f"hybrid ({h['small']}, {h['large']} for the {100 * h['share_to_large']:.0f}% least confident calls)"
    basis = (decision.get("basis") or {}).get("basis")
    on = f"; basis: {basis}" if basis and basis != "only option" else ""
    if decision["meets_bar"] is False:
        return f"no rung is shown to meet the bar {bar:.2f}; closest: {rec}{on}"
    return f"{kind} ({rec}{on})"


def render(data: dict[str, Any]) -> str:
    env = Environment(autoescape=True, undefined=StrictUndefined, keep_trailing_newline=True)
    source = (resources.files("ladder.report") / TEMPLATE).read_text(encoding="utf-8")
    metric = data["task"]["metric"]
    others: list[str] = []
    for c in data["scorecards"]:
        others += [m for m in c["metrics"] if m not in (metric, "validity", *others)]
    return env.from_string(source).render(
        **data,
        charts=all_charts(data),
        decision_title=decision_title(data["decision"], data["task"]["bar"]),
        other_metrics=others,
        worst=data["worst_errors"],
        money=money,
        human=human,
        num=lambda v: "-" if v is None else f"{v:.0f}",
        js=lambda v: v if isinstance(v, str) else json.dumps(v, ensure_ascii=False),
    )
