"""Training across 2 CPU processes (gloo) on the tiny model: the same loss curve as 1 process
with the same effective batch, one checkpoint, and a resume that crosses the two."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("peft")

from test_training_loop import KillAfter, lora_model, records, run, tiny  # noqa: E402, F401

from ladder.training.loop import CHECKPOINT, LoopConfig  # noqa: E402
from ladder.training.parallel import Replica, train_parallel  # noqa: E402

# the two sum the same per-token gradients in another order (float32): curves agree to ~1e-6;
# this is the tolerance the README states for `--processes`
TOLERANCE = 1e-4


def parallel(path, folder, recs, dev, cfg, processes=2, seed=0):
    model, tok = lora_model(path, seed)
    replica = Replica(path, "none", 4, 8, 0.0, ("q_proj", "v_proj"), seed)
    res = train_parallel(
        model,
        replica,
        processes,
        recs,
        dev,
        cfg,
        pad_id=tok.pad_token_id,
        folder=folder,
        fingerprint={"task": "t"},
    )
    return model, res


def curve(res) -> list[float]:
    return [x for h in res.state.history for x in (h["train_loss"], h["dev_loss"])]


def test_two_processes_give_one_process_loss_curve(tiny, tmp_path):  # noqa: F811
    _, tok = lora_model(tiny)
    recs, dev = records(tok, 32), records(tok, 12, seed=9)
    one = LoopConfig(epochs=2, lr=3e-3, batch_size=4, batch_tokens=256, grad_accum=2, patience=3)
    two = LoopConfig(**{**one.__dict__, "grad_accum": 1})  # same effective batch: 2 x 1
    m1, r1 = run(tiny, tmp_path / "one", recs, dev, one)
    m2, r2 = parallel(tiny, tmp_path / "two", recs, dev, two)
    assert r1.state.step == r2.state.step and r1.state.tokens == r2.state.tokens
    assert curve(r2) == pytest.approx(curve(r1), rel=TOLERANCE)
    assert curve(r1)[-1] < curve(r1)[1]  # it learned: dev loss fell
    w1, w2 = m1.state_dict(), m2.state_dict()
    assert all(torch.allclose(w1[k], w2[k], atol=1e-5) for k in w1 if "lora_" in k)
    assert (tmp_path / "two" / CHECKPOINT).exists()
    assert r2.state.answer_tokens == r1.state.answer_tokens


def test_a_one_process_checkpoint_resumes_across_two(tiny, tmp_path):  # noqa: F811
    _, tok = lora_model(tiny)
    recs, dev = records(tok, 16), records(tok, 6, seed=9)
    one = LoopConfig(epochs=2, lr=3e-3, batch_size=4, grad_accum=2, patience=3, seed=5)
    two = LoopConfig(**{**one.__dict__, "grad_accum": 1})
    _, straight = run(tiny, tmp_path / "straight", recs, dev, one)
    with pytest.raises(KeyboardInterrupt):  # killed in epoch 2 (2 steps per epoch)
        run(tiny, tmp_path / "killed", recs, dev, one, progress=KillAfter(3))
    _, res = parallel(tiny, tmp_path / "killed", recs, dev, two)
    assert res.state.resumed_from == 1 and res.state.epoch == 2
    assert curve(res) == pytest.approx(curve(straight), rel=TOLERANCE)


def test_the_lora_rung_trains_on_two_processes(tmp_path, tiny):  # noqa: F811
    """`ladder train --processes 2` (rungs.lora.processes): the adapter says how it was trained,
    and the setting is a hyperparameter, so a 1-process adapter is not reloaded for it."""
    import lora_tasks
    from ladder.climb import ClimbOptions, climb

    lora = "{epochs: 1, lr: 0.01, min_examples: 8, batch_size: 4, data_curve: null}"
    task = lora_tasks.task_dir(tmp_path / "t", tiny, lora=lora)
    opts = ClimbOptions(rungs=["lora"], all_rungs=True, options={"lora": {"processes": 2}})
    card = climb(task, opts).scorecards[0]
    assert card.extras["training"]["processes"] == 2
    assert card.extras["hyperparameters"]["processes"] == 2
    assert card.extras["training"]["history"][0]["dev_loss"] is not None
