"""Number formats: the once-per-machine probe and its cache, the per-phase choice, `--dtype`,
the dev check that can send bf16 back to fp32, and what the run records."""

from __future__ import annotations

import json

import pytest

from ladder.engines import numerics as nx
from ladder.errors import LadderError
from ladder.rungs import numerics_check as check

torch = pytest.importorskip("torch")
FP, BF = nx.FP32, nx.BF16


def figures(score=2.0, generate=1.1, train=1.5, fp32=40.0):
    """A synthetic probe: bf16 `x` times fp32's GFLOP/s per phase."""
    ratios = {"score": score, "generate": generate, "train": train}
    return {p: {"float32": fp32, "bfloat16": fp32 * r} for p, r in ratios.items()}


# ---------------------------------------------------------------- the probe


def test_the_probe_measures_once_per_machine_and_then_reads_its_cache(monkeypatch):
    calls = []

    def measure(device="cpu", seconds=0):
        calls.append(device)
        return figures()

    monkeypatch.setattr(nx, "measure", measure)
    first = nx.probe()
    second = nx.probe()
    assert len(calls) == 1 and not first["cached"] and second["cached"]
    assert second["gflops"] == first["gflops"] == figures()
    assert second["machine"]["torch"] == torch.__version__
    path = nx.cache_dir() / f"{first['key']}.json"
    assert json.loads(path.read_text())["gflops"] == figures()
    nx.probe(refresh=True)  # `ladder models prepare` measures again
    assert len(calls) == 2
    path.write_text("{not json")  # a damaged cache is measured again, never an error
    assert not nx.probe()["cached"] and len(calls) == 3


def test_the_cache_key_changes_with_the_cpu_and_torch():
    info = nx.machine()
    key = nx.cache_key(info)
    assert nx.cache_key({**info, "torch": "0.0.1"}) != key
    assert nx.cache_key({**info, "flags_sha": "0" * 16}) != key
    assert nx.cache_key({**info, "threads": 99}) == key  # same machine, other thread count


def test_the_kernels_really_measure():
    assert nx.matmul_gflops(32, 64, 64, "float32", seconds=0.01) > 0
    assert nx.matmul_gflops(8, 64, 64, "bfloat16", seconds=0.01) > 0
    assert nx.train_gflops(16, 64, 64, autocast=True, seconds=0.01) > 0


# ---------------------------------------------------------------- the choice


def test_bf16_is_chosen_per_phase_only_where_faster_by_the_margin():
    c = nx.choose("cpu", "auto", {"gflops": figures(score=2.0, generate=1.1, train=1.5)})
    assert c.phases == {"score": "bfloat16", "generate": "float32", "train": "bfloat16"}
    assert c.source == "probe" and c.pending  # scoring went bf16: checked on dev first
    assert "2.00x" in c.reasons["score"] and "must be >= 1.2x" in c.reasons["generate"]
    assert c.weights() == "float32"  # generation still needs the fp32 weights
    slow = nx.choose("cpu", "auto", {"gflops": figures(0.3, 0.9, 0.4)})
    assert set(slow.phases.values()) == {"float32"} and not slow.pending
    assert nx.choose("cpu", None, {"gflops": figures(2, 2, 2)}).weights() == "bfloat16"
    # generation alone in bf16 would cast the fp32 weights scoring keeps at every token
    alone = nx.choose("cpu", "auto", {"gflops": figures(score=0.5, generate=2.0, train=0.5)})
    assert alone.phases["generate"] == "float32" and "every token" in alone.reasons["generate"]
    assert not alone.pending


def test_dtype_forces_every_phase_without_measuring(monkeypatch):
    monkeypatch.setattr(nx, "measure", lambda *a, **k: pytest.fail("forced: nothing to measure"))
    for d in ("float32", "bfloat16"):
        c = nx.choose("cpu", d)
        assert set(c.phases.values()) == {d} and c.source == "forced" and not c.pending
        assert "--dtype" in c.reasons["train"]


def test_cuda_takes_bf16_where_the_gpu_supports_it(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: True)
    assert set(nx.choose("cuda").phases.values()) == {"bfloat16"}
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: False)
    assert set(nx.choose("cuda").phases.values()) == {"float32"}


def test_an_unknown_dtype_is_refused_with_the_choices():
    with pytest.raises(LadderError, match=r"--dtype 'fp16'.*auto.*float32.*bfloat16"):
        nx.check_dtype("fp16")
    assert nx.check_dtype(None) == "auto"


# ---------------------------------------------------------------- the dev check


@pytest.mark.parametrize(
    ("agreement", "ci", "speedup", "kept", "said"),
    [
        (1.0, (-0.03, 0.03), 2.0, True, "agreed with fp32 on 100%"),
        (0.8, (-0.1, 0.1), 2.0, False, "< 90%"),
        (0.95, (0.01, 0.2), 2.0, False, "excludes 0"),
        (1.0, (0.0, 0.0), 0.9, False, "not faster on the model"),
    ],
)
def test_the_verdict_keeps_bf16_only_when_it_agrees_and_is_faster(
    agreement, ci, speedup, kept, said
):
    ok, why = check.verdict(agreement, ci, speedup, 32)
    assert ok is kept and said in why
    assert check.verdict(1.0, (0, 0), 2.0, 0)[0] is False  # no dev: nothing shown, fp32


def test_poor_agreement_on_synthetic_answers_falls_back(classify_task):
    from ladder.dataset import Prediction, load_dataset
    from ladder.task import load_task

    task = load_task(classify_task)
    items = load_dataset(task).examples[:20]
    right = [Prediction(e.id, e.output, True) for e in items]
    wrong = [Prediction(e.id, "spam" if e.output != "spam" else "work", True) for e in items]
    half = right[:10] + wrong[10:]
    same = check.compare(task, items, right, list(right), (1.0, 0.5))
    assert same["kept"] and same["agreement"] == 1.0 and same["speedup"] == 2.0
    worse = check.compare(task, items, right, half, (1.0, 0.5))
    assert not worse["kept"] and worse["agreement"] == 0.5 and worse["diff"] == -0.5
    assert worse["ci"][1] < 0 and "agreed with fp32 on 50%" in worse["why"]


# ---------------------------------------------------------------- in a climb


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    from tiny_model import build_tiny_model

    return build_tiny_model(tmp_path_factory.mktemp("tiny"))


def tiny_task(root, tiny):
    from conftest import write_classify_task
    from lora_tasks import model_yaml, rows

    return write_classify_task(root, rows=rows(60), extra_yaml=model_yaml(tiny))


def climbed(task, **opts):
    from ladder.climb import ClimbOptions, climb
    from ladder.store.db import Store

    opts.setdefault("variant", "instructions+format")
    res = climb(task, ClimbOptions(rungs=["zero-shot"], limit=8, **opts))
    return res, Store().get_run(res.run_id)["provenance"]["numerics"]["tiny"]


def test_forced_bf16_runs_every_phase_in_bf16_and_is_recorded(tmp_path, tiny):
    res, num = climbed(tiny_task(tmp_path / "t", tiny), dtype="bfloat16")
    assert num["phases"] == dict.fromkeys(nx.PHASES, "bfloat16") and num["source"] == "forced"
    assert num["agreement"] == {}  # forced: not second-guessed on dev
    card = res.scorecards[0]
    assert card.engine["dtype"] == "bfloat16" and card.engine["dtypes"]["score"] == "bfloat16"
    run = json.loads((res.run_dir / "run.json").read_text())
    assert run["provenance"]["numerics"]["tiny"]["phases"]["score"] == "bfloat16"


def test_auto_on_a_cpu_without_bf16_gain_stays_fp32(tmp_path, tiny):
    _, num = climbed(tiny_task(tmp_path / "t", tiny))  # conftest's probe: bf16 4x slower
    assert num["source"] == "probe" and set(num["phases"].values()) == {"float32"}
    assert num["probe"]["gflops"]["score"] == {"float32": 40.0, "bfloat16": 10.0}
    assert "0.25x" in num["reasons"]["score"]


def test_auto_bf16_is_checked_on_dev_and_falls_back_when_answers_disagree(
    tmp_path, tiny, monkeypatch
):
    monkeypatch.setattr(nx, "measure", lambda *a, **k: figures(3.0, 3.0, 3.0))
    monkeypatch.setattr(check, "MIN_AGREEMENT", 1.01)  # no agreement is enough: must fall back
    res, num = climbed(tiny_task(tmp_path / "t", tiny))
    score = num["agreement"]["score"]
    assert score["n"] == 8 and 0 <= score["agreement"] <= 1 and not score["kept"]
    assert set(score) >= {"fp32", "bf16", "diff", "ci", "speedup", "seconds"}
    assert num["phases"]["score"] == "float32" and "fp32" in num["reasons"]["score"]
    assert res.scorecards[0].engine["dtypes"]["score"] == "float32"
    assert res.scorecards[0].engine["dtype"] == "float32"  # the fp32 weights read back


def test_auto_bf16_that_agrees_on_dev_is_kept(tmp_path, tiny, monkeypatch):
    monkeypatch.setattr(nx, "measure", lambda *a, **k: figures(3.0, 3.0, 3.0))
    monkeypatch.setattr(check, "MIN_AGREEMENT", 0.0)
    monkeypatch.setattr(check, "verdict", lambda *a: (True, "agreed (test)"))
    res, num = climbed(tiny_task(tmp_path / "t", tiny))
    assert num["agreement"]["score"]["kept"] and num["phases"]["score"] == "bfloat16"
    # the answers are scored labels: generation's check waits for a first generation
    assert "generate" not in num["agreement"] and num["deferred"] == ["generate"]
    assert "waits for the first generation" in num["reasons"]["generate"]
    assert res.scorecards[0].engine["dtype"] == "bfloat16"  # both phases bf16: weights too


def test_a_deferred_generation_check_runs_before_the_first_generation(tmp_path, tiny, monkeypatch):
    monkeypatch.setattr(nx, "measure", lambda *a, **k: figures(3.0, 3.0, 3.0))
    monkeypatch.setattr(check, "MIN_AGREEMENT", 0.0)
    seen = []
    real = check.check_on_dev

    def spy(ctx, name, engine, phases=nx.INFERENCE):
        seen.append((tuple(phases), engine.numerics.phases["generate"]))
        return real(ctx, name, engine, phases)

    monkeypatch.setattr(check, "check_on_dev", spy)
    monkeypatch.setattr(check, "verdict", lambda *a: (False, "disagreed (test)"))
    cot = {"zero-shot": {"chain_of_thought": True}}
    res, num = climbed(
        tiny_task(tmp_path / "t", tiny), variant="instructions+format+cot", options=cot
    )
    # scoring checked up front; generation once, when the thoughts were first generated
    assert seen == [(("score",), "bfloat16"), (("generate",), "bfloat16")]
    assert num["agreement"]["generate"]["why"] == "disagreed (test)"
    assert num["phases"]["generate"] == "float32" and num["deferred"] == []
    assert res.scorecards[0].engine["dtypes"]["generate"] == "float32"
    assert res.scorecards[0].engine["dtype"] == "float32"  # the fp32 weights read back


def test_the_cli_refuses_a_bad_dtype_with_exit_2(run_cli, classify_task):
    for cmd in ("climb", "eval", "train"):
        extra = ["--rung", "zero-shot"] if cmd == "eval" else []
        code, out, err = run_cli(cmd, classify_task, *extra, "--dtype", "fp16")
        assert code == 2 and "--dtype" in out + err and "bfloat16" in out + err


def test_the_api_refuses_a_bad_dtype(classify_task):
    from ladder.climb import ClimbOptions, climb

    with pytest.raises(LadderError, match="--dtype 'half'"):
        climb(classify_task, ClimbOptions(model="fake", dtype="half"))


def test_a_resume_with_another_dtype_is_refused(tmp_path, tiny):
    from ladder.climb import ClimbOptions, climb

    task = tiny_task(tmp_path / "t", tiny)
    res, _ = climbed(task, dtype="float32")
    from ladder.store.db import Store

    Store().set_run_status(res.run_id, "interrupted")
    with pytest.raises(LadderError, match="dtype"):
        climb(task, ClimbOptions(run_id=res.run_id, dtype="bfloat16"))


# ---------------------------------------------------------------- training


def test_training_under_bf16_autocast_keeps_fp32_master_weights(tmp_path, tiny):
    from ladder.training.adapters import attach_lora, load_base
    from ladder.training.data import Record
    from ladder.training.loop import LoopConfig, train

    lm, tok = load_base(str(tiny))
    model = attach_lora(lm, 4, 8, 0.0, ["q_proj", "v_proj"], 0)
    ids = tok("the email is spam answer :").input_ids
    ans = [*tok(" spam", add_special_tokens=False).input_ids, tok.eos_token_id]
    recs = [Record(f"r{i}", ids, ans) for i in range(8)]
    cfg = LoopConfig(epochs=1, batch_size=4, autocast="bfloat16")
    res = train(model, recs, [], cfg, pad_id=tok.pad_token_id, folder=tmp_path, fingerprint={})
    assert res.dtype == "bfloat16" and res.summary(8)["dtype"] == "bfloat16"
    assert res.state.step == 2 and res.state.history[0]["train_loss"] > 0
    trained = [p for p in model.parameters() if p.requires_grad]
    assert trained and all(p.dtype == torch.float32 for p in trained)
    plain = train(
        attach_lora(load_base(str(tiny))[0], 4, 8, 0.0, ["q_proj"], 0),
        recs, [], LoopConfig(epochs=1, batch_size=4),
        pad_id=tok.pad_token_id, folder=tmp_path / "b", fingerprint={},
    )  # fmt: skip
    assert plain.dtype == "float32"


def test_training_over_a_base_held_in_bf16_keeps_fp32_lora_weights(tmp_path, tiny):
    from ladder.training.adapters import attach_lora, load_base
    from ladder.training.data import Record
    from ladder.training.loop import LoopConfig, train

    lm, tok = load_base(str(tiny), hold="bfloat16")
    assert {p.dtype for p in lm.parameters()} == {torch.bfloat16}
    model = attach_lora(lm, 4, 8, 0.0, ["q_proj", "v_proj"], 0)
    ids = tok("the email is spam answer :").input_ids
    ans = [*tok(" spam", add_special_tokens=False).input_ids, tok.eos_token_id]
    recs = [Record(f"r{i}", ids, ans) for i in range(8)]
    before = {n: p.detach().clone() for n, p in model.named_parameters() if p.requires_grad}
    res = train(
        model, recs, [], LoopConfig(epochs=2, batch_size=4, lr=1e-2),
        pad_id=tok.pad_token_id, folder=tmp_path, fingerprint={},
    )  # fmt: skip
    assert res.dtype == "bfloat16" and res.summary(8)["dtype"] == "bfloat16"
    losses = [h["train_loss"] for h in res.state.history]
    assert res.state.step == 4 and all(loss == loss and loss > 0 for loss in losses)  # no NaN
    trained = {n: p for n, p in model.named_parameters() if p.requires_grad}
    assert trained and all(p.dtype == torch.float32 for p in trained.values())
    assert any(not torch.equal(p, before[n]) for n, p in trained.items())  # they learned
    frozen = [p for p in model.parameters() if not p.requires_grad]
    assert frozen and all(p.dtype == torch.bfloat16 for p in frozen)


def test_the_base_is_held_in_bf16_only_where_every_phase_on_it_is_settled_on_bf16():
    from types import SimpleNamespace

    from ladder.rungs.lora import cpu_hold

    def ctx(score, generate, pending=(), deferred=()):
        phases = {"score": score, "generate": generate}
        numerics = nx.Numerics(phases, "probe", pending=pending, deferred=deferred)
        return SimpleNamespace(inference_numerics=lambda base, device: numerics)

    assert cpu_hold(ctx(BF, BF), "m", BF) == BF
    assert cpu_hold(ctx(BF, BF), "m", FP) is None  # training computes in fp32
    assert cpu_hold(ctx(BF, FP), "m", BF) is None  # generation chose fp32
    assert cpu_hold(ctx(FP, FP), "m", BF) is None
    assert cpu_hold(ctx(BF, BF, pending=("score",)), "m", BF) is None  # dev check not run yet
    # generation's check waits for a first generation (answers are scored): scoring settled
    gen = ("generate",)
    assert cpu_hold(ctx(BF, BF, pending=gen, deferred=gen), "m", BF) == BF
    assert cpu_hold(ctx(BF, BF, pending=("score", "generate"), deferred=gen), "m", BF) is None


def test_models_prepare_measures_again_and_says_what_auto_will_choose(monkeypatch, capsys):
    from ladder.cli.models import measure_numerics

    calls = []
    monkeypatch.setattr(nx, "measure", lambda *a, **k: calls.append(1) or figures(2.0, 2.0, 0.5))
    nx.probe()
    measure_numerics()  # what `ladder models prepare` runs after preparing an hf model
    out = capsys.readouterr().out
    assert len(calls) == 2  # measured again, although cached
    assert "score" in out and "2.00x" in out and "train" in out and "0.50x" in out
