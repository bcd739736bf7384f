"""The hybrid router: confidence, calibration on the hold-out, routing, and fallback.

The large model is a second real gateway on loopback (an "oracle" that answers every prompt
with its gold label); the small one is the fake engine scripted to be sure and right on some
labels, unsure and wrong on spam.
"""

from __future__ import annotations

import json

import httpx
import numpy as np
import pytest

from ladder.dataset import Prediction, load_dataset
from ladder.engines.fake import FakeEngine
from ladder.serve.catalog import ServeOptions
from ladder.serve.router import calibration_curve, choose, confidences
from ladder.task import load_task
from serve_util import climb_fake, gateway, oracle_responder

pytest.importorskip("fastapi", reason="the [serve] extra is not installed")


def unsure_on_spam(task_dir):
    """Right and sure (margin 6) except on spam: says work by a hair (margin 0.2)."""
    gold = {e.input: e.output for e in load_dataset(load_task(task_dir)).examples}

    def scorer(req):
        query = req.prompt.rsplit("Input:\n", 1)[-1]
        label = next((lab for text, lab in gold.items() if query.startswith(text)), None)
        if label is None:
            return [-1.0] * len(req.choices)
        if label == "spam":
            return [
                0.0 if c.strip() == "work" else (-0.2 if c.strip() == "spam" else -6.0)
                for c in req.choices
            ]
        return [0.0 if c.strip() == label else -6.0 for c in req.choices]

    return scorer


def test_curve_and_choice(classify_task):
    task = load_task(classify_task)
    exs = load_dataset(task).holdout[:6]
    # small: right with margins 3, 2, 1; wrong with margins 0.5, 0.1; one invalid
    margins = [3.0, 2.0, 1.0, 0.5, 0.1, None]
    small = []
    for e, m in zip(exs, margins):
        wrong = next(lab for lab in task.labels if lab != e.output)
        out = e.output if m is not None and m >= 1 else wrong
        small.append(Prediction(e.id, out if m is not None else None, m is not None))
    large = [Prediction(e.id, e.output, True) for e in exs]
    conf = [m if m is not None else 0.0 for m in margins]
    curve = calibration_curve(task, exs, small, conf, large, "accuracy")
    shares = [p["large_share"] for p in curve]
    assert (
        shares == sorted(shares)
        and curve[0]["large_share"] == pytest.approx(1 / 6, abs=1e-3)
        and curve[-1]["large_share"] == 1.0
    )
    assert curve[0]["quality"] == pytest.approx(4 / 6, abs=1e-3) and curve[-1]["quality"] == 1.0
    point, note = choose(curve, quality=1.0)
    assert (
        point["quality"] == 1.0
        and point["large_share"] == pytest.approx(3 / 6, abs=1e-3)
        and note is None
    )
    assert 0.5 < point["threshold"] <= 1.0  # margins 0.5 and 0.1 go large, 1.0 stays
    point, _ = choose(curve, share=0.34)
    assert point["large_share"] <= 0.34 and point["quality"] == pytest.approx(5 / 6, abs=1e-3)
    point, note = choose([{**p, "quality": 0.5} for p in curve], quality=0.9)
    assert "no threshold reaches" in note


def test_confidence_margin_invalid_and_likelihood(extract_task, classify_task):
    class Sol:
        cot = False

        def __init__(self, engine):
            self.engine = engine

        def prompts(self, exs):
            return [f"P: {e.input}" for e in exs]

    scored = Prediction("a", "work", True, scores=[-0.1, -2.6, -5.0])
    # the report's confidence: the probability margin of the top two labels
    assert confidences(Sol(FakeEngine()), [None], [scored]) == [pytest.approx(0.8425, abs=1e-4)]
    eng = FakeEngine(scorer=lambda req: [-3.0])
    exs = load_dataset(load_task(extract_task)).holdout[:2]
    preds = [
        Prediction(exs[0].id, {"x": 1}, True, raw=' {"x": 1}', tokens_out=6),
        Prediction(exs[1].id, None, False, raw="nope"),
    ]
    conf = confidences(Sol(eng), exs, preds)
    assert conf[0] == pytest.approx(np.exp(-3.0 / 6)) and conf[1] == 0.0
    assert confidences(Sol(eng), exs, preds, likelihood=False)[0] == 1.0


@pytest.fixture
def oracle(tmp_path):
    """The "large" model: another gateway serving an engine that knows every gold label."""
    served = climb_fake(
        tmp_path, engine=lambda root: FakeEngine("fake", scorer=unsure_on_spam(root))
    )
    eng = FakeEngine("oracle", responder=oracle_responder(served.task_dir))
    with gateway(
        ServeOptions(model="oracle", engines={"oracle": eng}), auth=False, log=False
    ) as up:
        yield served, up, eng


def test_route_calibrates_routes_and_falls_back(oracle, tmp_path):
    served, up, oracle_engine = oracle
    small = FakeEngine("fake", scorer=unsure_on_spam(served.task_dir))
    opts = ServeOptions(
        run=served.run_id,
        large=f"big={up.url}",
        large_model="oracle",
        engines={"fake": small},
        target_quality=1.0,
        large_price=(1.0, 2.0),
    )
    with gateway(opts) as g:
        cal = g.catalog.calibration
        assert (
            cal.achieved["quality"] == 1.0
            and 0 < cal.achieved["large_share"] < 1
            and cal.achieved["small_only"] < 1.0
        )
        saved = json.loads((g.catalog.ctx.run_dir / "serve" / "calibration-tiny.json").read_text())
        assert saved["threshold"] == cal.threshold and len(saved["curve"]) >= 2
        assert 0.0995 < cal.threshold <= 0.993  # between spam's margin and the others'
        ids = [m.id for m in g.client().models.list()]
        assert "tiny" in ids and "big" in ids and any(i.endswith("@big") for i in ids)
        c = g.client()

        def ask(text):
            raw = c.chat.completions.with_raw_response.create(
                model="tiny", messages=[{"role": "user", "content": text}]
            )
            return raw.headers, raw.parse()

        spam = "You have won five million dollars in our lottery, send your bank details and passport copy today."
        work = "Standup is cancelled tomorrow morning, post your async update in the team channel."
        h, r = ask(work)
        assert "@" not in h["x-ladder-route"] and r.choices[0].message.content == "work"
        calls = oracle_engine.calls["generate"]
        h, r = ask(spam)
        assert h["x-ladder-route"].endswith("@big") and r.choices[0].message.content == "spam"
        assert oracle_engine.calls["generate"] == calls + 1 and float(
            h["x-ladder-confidence"]
        ) == pytest.approx(0.0995, abs=1e-3)
        assert r.model_extra["ladder"]["reason"].startswith("confidence")
        # the large model's raw endpoint, proxied (and streamed through as it arrives)
        assert (
            c.completions.create(model="big", prompt="x: ", max_tokens=3).choices[0].text == " work"
        )
        streamed = "".join(
            ch.choices[0].text
            for ch in c.completions.create(model="big", prompt="x: ", stream=True)
            if ch.choices
        )
        assert streamed == " work"
        up.stop()  # the large model goes down
        h, r = ask(spam + " ")
        assert "@" not in h["x-ladder-route"] and "large model failed" in h["x-ladder-fallback"]
        assert r.choices[0].message.content == "work"  # the small model's answer, flagged
        h, _ = ask(spam + "  ")
        assert "skipped: down" in h["x-ladder-fallback"]
        err = httpx.post(
            f"{g.url}/completions",
            json={"model": "big", "prompt": "x"},
            headers={"Authorization": f"Bearer {g.key}"},
            timeout=30,
        )
        assert err.status_code == 502 and err.json()["error"]["code"] == "upstream_unavailable"
        assert "down" in httpx.get(g.root + "/health").json()["upstreams"]["big"]
        assert (
            "ladder_fallbacks_total"
            in httpx.get(g.root + "/metrics", headers={"Authorization": f"Bearer {g.key}"}).text
        )
        g.gw.writer.flush()
        rows = g.db.query(model="tiny")
        assert {r["route"].endswith("@big") for r in rows} == {True, False}
        assert sum(1 for r in rows if r["fallback"]) == 2
        big = next(r for r in rows if r["route"].endswith("@big"))
        assert big["cost_usd"] == pytest.approx(
            (big["tokens_in"] * 1 + big["tokens_out"] * 2) / 1e6
        )


def test_route_with_the_large_model_down_at_start_uses_a_share_target(oracle, tmp_path):
    served, up, _ = oracle
    up.stop()
    opts = ServeOptions(
        run=served.run_id, large=f"{up.url}", large_model="oracle", target_share=0.3
    )
    with gateway(opts) as g:
        cal = g.catalog.calibration
        assert (
            cal.achieved["large_share"] <= 0.3
            and cal.achieved["quality"] is None
            and "unavailable" in cal.note
        )
        raw = g.client().chat.completions.with_raw_response.create(
            model="tiny",
            messages=[{"role": "user", "content": "Cheap pills without any prescription needed"}],
        )
        assert raw.parse().choices[0].message.content in ("work", "personal", "spam")


def test_extract_route_sends_invalid_json_to_the_large_model(tmp_path):
    """Extraction: an unparseable answer always goes large; a valid one stays small."""
    from conftest import write_extract_task
    from ladder.climb import ClimbOptions, climb

    root = write_extract_task(tmp_path / "xtask")
    gold = {e.input: e.output for e in load_dataset(load_task(root)).examples}

    def find(prompt: str):
        query = prompt.rsplit("Input:\n", 1)[-1]
        return next((o for t, o in gold.items() if query.startswith(t)), {})

    def small(req) -> str:  # right on technical tickets, garbage on billing ones
        g = find(req.prompt)
        return " not json" if g.get("category") == "billing" else " " + json.dumps(g)

    def engine():
        return FakeEngine("fake", responder=small)

    res = climb(
        root,
        ClimbOptions(model="fake", rungs=["zero-shot"], variant="instructions+format"),
        ctx_hook=lambda ctx: ctx.set_engine("fake", engine()),
    )
    oracle = FakeEngine("oracle", responder=lambda req: " " + json.dumps(find(req.prompt)))
    with gateway(
        ServeOptions(model="oracle", engines={"oracle": oracle}), auth=False, log=False
    ) as up:
        opts = ServeOptions(
            run=res.run_id,
            large=f"big={up.url}",
            large_model="oracle",
            engines={"fake": engine()},
            target_quality=1.0,
        )
        with gateway(opts) as g:
            cal = g.catalog.calibration
            assert cal.confidence.startswith("answer validity") and cal.achieved["quality"] == 1.0
            assert 0.3 < cal.achieved["large_share"] < 0.7  # the billing half, no more
            c = g.client()
            for text, want in list(gold.items())[:6]:
                raw = c.chat.completions.with_raw_response.create(
                    model="tiny-extract", messages=[{"role": "user", "content": text}]
                )
                r = raw.parse()
                assert json.loads(r.choices[0].message.content) == want
                if want["category"] == "billing":
                    assert raw.headers["x-ladder-route"] == "zero-shot@big"
                    assert r.model_extra["ladder"]["reason"] == "small model's output is invalid"
                    assert raw.headers["x-ladder-route-reason"] == "small model's output is invalid"
                else:
                    assert raw.headers["x-ladder-route"] == "zero-shot"
                    assert 0 < float(raw.headers["x-ladder-confidence"]) <= 1


def test_large_model_priced_from_the_book_by_its_name(oracle):
    served, up, _ = oracle
    opts = ServeOptions(
        run=served.run_id, large=f"gpt-4o-mini={up.url}", large_model="oracle", target_share=0.5
    )
    with gateway(opts) as g:
        assert g.catalog.large_price == (0.15, 0.60)  # the shipped book's gpt-4o-mini
        r = g.client().completions.create(model="gpt-4o-mini", prompt="Input:\nhello", max_tokens=3)
        g.gw.writer.flush()
        row = g.db.get(r.id)
        assert row["cost_usd"] == pytest.approx(
            (row["tokens_in"] * 0.15 + row["tokens_out"] * 0.60) / 1e6
        )
        assert row["cost_usd"] > 0


def test_an_invalid_large_answer_never_replaces_a_valid_small_one():
    """Below the threshold the large model is asked, but its invalid answer is not returned."""
    import asyncio

    from ladder.serve.router import Route
    from ladder.serve.targets import Answer

    class Model:
        def __init__(self, route, valid, confidence=None):
            self.route, self.valid, self.confidence, self.calls = route, valid, confidence, 0

        async def answer(self, call):
            self.calls += 1
            return Answer("x", self.route, valid=self.valid, confidence=self.confidence)

    class Up:
        last_error = None

        def up(self):
            return True

        def recovered(self):
            pass

    small, bad_large = Model("few-shot", True, 0.1), Model("few-shot@big", False)
    ans = asyncio.run(Route("t", small, bad_large, 0.5, Up()).answer(None))
    assert bad_large.calls == 1 and ans.route == "few-shot" and ans.valid
    assert "large model's answer is invalid" in ans.extra["reason"]
    good_large = Model("few-shot@big", True)
    ans = asyncio.run(Route("t", small, good_large, 0.5, Up()).answer(None))
    assert ans.route == "few-shot@big" and ans.extra["reason"].startswith("confidence 0.1")


def test_the_report_promises_what_the_route_delivers(oracle):
    """One confidence and one sweep: on the same hold-out answers, the report's hybrid and the
    gateway's calibration give the same threshold, share of large calls and quality."""
    from ladder.hybrid import confidence, recommend
    from ladder.serve.router import _holdout

    served, up, _ = oracle
    small_engine = FakeEngine("fake", scorer=unsure_on_spam(served.task_dir))
    opts = ServeOptions(
        run=served.run_id,
        large=f"big={up.url}",
        large_model="oracle",
        engines={"fake": small_engine},
    )  # no target: calibrated to the task's bar, as the report's hybrid is
    with gateway(opts) as g:
        cat = g.catalog
        cal, ctx, route = cat.calibration, cat.ctx, cat.targets[cat.task]
        examples, small_preds = _holdout(ctx, route.small.solution)
        _, large_preds = _holdout(ctx, route.large.solution)
        bar = ctx.task.spec.bar.threshold
        h = recommend(
            ctx.task, examples, (cal.small, small_preds, 1e-6), (cal.large, large_preds, 1e-4),
            cal.metric, bar,
        )  # fmt: skip
        assert h["threshold"] == cal.threshold
        assert h["share_to_large"] == cal.achieved["large_share"]
        assert h["quality"] == cal.achieved["quality"] >= bar
        assert h["verdict"]["value"] == pytest.approx(h["quality"], abs=1e-4)  # one routing
        assert h["meets_bar"] == (h["verdict"]["p_meets"] >= 0.95)
        # and a live request carries the same confidence the sweep used for that item
        spam = next((e, p) for e, p in zip(examples, small_preds) if e.output == "spam")
        raw = g.client().chat.completions.with_raw_response.create(
            model=cat.task, messages=[{"role": "user", "content": spam[0].input}]
        )
        assert float(raw.headers["x-ladder-confidence"]) == pytest.approx(
            confidence(spam[1]), abs=1e-3
        )
