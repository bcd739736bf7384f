"""The training loop on a tiny random Gemma 3: the answer-only loss is the model's own loss,
batches waste little padding, training is deterministic, resumable and stops cleanly."""

from __future__ import annotations

import itertools
import math
import random

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("peft")

from ladder.errors import DataError, ModelError  # noqa: E402
from ladder.training import loop  # noqa: E402
from ladder.training.adapters import attach_lora, load_base  # noqa: E402
from ladder.training.data import Record, build_records, collate, length_batches  # noqa: E402
from ladder.training.loop import LoopConfig, TrainingError, train  # noqa: E402
from lora_tasks import one_thread  # noqa: E402, F401  (fixture)
from tiny_model import WORDS, build_tiny_model  # noqa: E402

CONTENT = [w for w in WORDS if w.isalpha()]


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    return str(build_tiny_model(tmp_path_factory.mktemp("tiny"), sliding_window=8))


def records(tok, n=24, seed=0) -> list[Record]:
    """Prompts of varied length whose answer is a function of the prompt's first word."""
    rng = random.Random(seed)
    out = []
    for i in range(n):
        words = rng.choices(CONTENT, k=rng.randint(3, 20))
        label = "spam" if words[0] < "m" else "work"
        prompt = tok(" ".join(words) + " answer :").input_ids
        out.append(
            Record(
                f"r{i}",
                prompt,
                [*tok(" " + label, add_special_tokens=False).input_ids, tok.eos_token_id],
            )
        )
    return out


def lora_model(path, seed=0):
    lm, tok = load_base(path)
    return attach_lora(lm, 4, 8, 0.0, ["q_proj", "v_proj"], seed), tok


def weights(model) -> dict:
    return loop.trainable_state(model)


def same(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_answer_only_loss_is_the_models_own_loss(tiny):
    """Hidden states + lm_head at answer positions only == the full forward with masked labels,
    and right padding in a batch changes nothing."""
    model, tok = lora_model(tiny)
    recs = records(tok, 6)
    batch = collate(recs, tok.pad_token_id)
    got = loop.answer_loss(model, batch).item() / len(batch.targets)
    total, n = 0.0, 0
    with torch.no_grad():
        for r in recs:
            ids = torch.tensor([r.prompt + r.answer])
            labels = torch.tensor([[-100] * len(r.prompt) + r.answer])
            out = model(input_ids=ids, labels=labels)
            total += out.loss.item() * len(r.answer)
            n += len(r.answer)
    assert got == pytest.approx(total / n, rel=1e-5)
    assert batch.tokens == sum(r.length for r in recs) < batch.padded


def test_text_loss_is_the_models_next_token_loss(tiny):
    model, tok = lora_model(tiny)
    ids = tok(" ".join(CONTENT[:40])).input_ids
    with torch.no_grad():
        want = model(input_ids=torch.tensor([ids]), labels=torch.tensor([ids])).loss.item()
    assert loop.text_loss(model, ids, window=512, chunk=7) == pytest.approx(want, rel=1e-5)


def test_length_batches_cover_everything_once_with_little_padding(tiny):
    _, tok = load_base(tiny)
    recs = records(tok, 64)
    batches = length_batches(recs, max_rows=8, max_tokens=120, seed=1)
    assert sorted(i for b in batches for i in b) == list(range(64))
    assert all(
        (len(b) <= 8 and max(recs[i].length for i in b) * len(b) <= 120) or len(b) == 1
        for b in batches
    )
    padded = sum(max(recs[i].length for i in b) * len(b) for b in batches)
    real = sum(r.length for r in recs)
    rng = random.Random(0)
    order = rng.sample(range(64), 64)
    naive = sum(max(recs[i].length for i in order[k : k + 8]) * 8 for k in range(0, 64, 8))
    assert padded / real < 1.1 < naive / real  # bucketed: under 10% padding; random: more
    assert length_batches(recs, 8, 120, seed=1) == batches
    assert length_batches(recs, 8, 120, seed=2) != batches


def test_cosine_schedule_warms_up_then_decays():
    f = [loop.cosine_with_warmup(s, 3, 20) for s in range(20)]
    assert f[0] < f[1] < f[2] < f[3] == 1.0
    assert all(a >= b for a, b in itertools.pairwise(f[3:])) and f[-1] < 0.02


def run(path, tmp, recs, dev, cfg, fingerprint=None, progress=None, seed=0):
    model, tok = lora_model(path, seed)
    res = train(
        model,
        recs,
        dev,
        cfg,
        pad_id=tok.pad_token_id,
        folder=tmp,
        fingerprint=fingerprint or {"task": "t"},
        progress=progress,
    )
    return model, res


def test_training_lowers_the_loss_and_repeats_exactly(tiny, tmp_path):
    _, tok = load_base(tiny)
    recs, dev = records(tok, 32), records(tok, 12, seed=9)
    cfg = LoopConfig(epochs=3, lr=3e-3, batch_size=4, batch_tokens=256, patience=3)
    m1, r1 = run(tiny, tmp_path / "a", recs, dev, cfg)
    m2, r2 = run(tiny, tmp_path / "b", recs, dev, cfg)
    h = r1.state.history
    assert h[-1]["train_loss"] < h[0]["train_loss"] and h[-1]["dev_loss"] < h[0]["dev_loss"]
    assert same(weights(m1), weights(m2)) and r1.state.history == r2.state.history
    s = r1.summary(len(recs))
    assert {"seconds", "device", "examples", "tokens", "epochs", "tokens_per_s"} <= set(s)
    assert (
        s["device"] == "cpu" and s["epochs"] == 3 and s["tokens"] == 3 * sum(r.length for r in recs)
    )
    assert (tmp_path / "a" / loop.CHECKPOINT).exists()


def test_gradient_accumulation_weighs_every_answer_token_alike(tiny, tmp_path, monkeypatch):
    """Two micro-batches with unequal answer lengths make the same step as one batch of all."""
    _, tok = load_base(tiny)
    eos = tok.eos_token_id
    recs = []
    for i, answer in enumerate(["spam", "work", "alpha beta gamma", "delta epsilon zeta"]):
        prompt = tok(f"{CONTENT[i]} the email is answer :").input_ids
        recs.append(
            Record(str(i), prompt, [*tok(" " + answer, add_special_tokens=False).input_ids, eos])
        )
    # plain SGD: the update is proportional to the gradient, so a mis-weighted mean would show
    monkeypatch.setattr(
        torch.optim, "AdamW", lambda params, lr, weight_decay: torch.optim.SGD(params, lr=lr)
    )
    cfg = {"epochs": 1, "lr": 0.5, "warmup": 0.0, "max_grad_norm": 1e9}
    one, _ = run(tiny, tmp_path / "a", recs, [], LoopConfig(batch_size=4, **cfg))
    acc, _ = run(tiny, tmp_path / "b", recs, [], LoopConfig(batch_size=2, grad_accum=2, **cfg))
    a, b, start = weights(one), weights(acc), weights(lora_model(tiny)[0])
    assert not same(a, start)
    assert all(torch.allclose(a[k], b[k], atol=1e-6) for k in a)


class KillAfter:
    """A progress display that 'kills' the process after n optimizer steps."""

    def __init__(self, n):
        self.n = n

    def task(self, description, total=None):
        import contextlib

        outer = self

        class Bar:
            def advance(self, k=1):
                outer.n -= k
                if outer.n < 0:
                    raise KeyboardInterrupt

            def update(self, **kw):
                pass

        return contextlib.nullcontext(Bar())

    def log(self, message):
        pass


def test_a_killed_training_resumes_to_the_very_same_weights(tiny, tmp_path):
    _, tok = load_base(tiny)
    recs, dev = records(tok, 16), records(tok, 6, seed=9)
    cfg = LoopConfig(epochs=3, lr=3e-3, batch_size=4, patience=3, seed=5)
    straight, _ = run(tiny, tmp_path / "straight", recs, dev, cfg)
    steps_per_epoch = 4
    with pytest.raises(KeyboardInterrupt):  # killed in the middle of epoch 2
        run(tiny, tmp_path / "killed", recs, dev, cfg, progress=KillAfter(steps_per_epoch + 2))
    resumed, res = run(tiny, tmp_path / "killed", recs, dev, cfg, progress=KillAfter(10**6))
    assert res.state.resumed_from == 1 and res.state.epoch == 3
    assert same(weights(straight), weights(resumed))


def test_a_checkpoint_of_another_training_is_refused(tiny, tmp_path):
    _, tok = load_base(tiny)
    recs = records(tok, 8)
    run(tiny, tmp_path, recs, [], LoopConfig(epochs=1), fingerprint={"task": "a", "base": "x"})
    with pytest.raises(TrainingError) as err:
        run(tiny, tmp_path, recs, [], LoopConfig(epochs=1), fingerprint={"task": "b", "base": "x"})
    assert "task: checkpoint 'a', now 'b'" in str(err.value) and "delete" in str(err.value)
    (tmp_path / loop.CHECKPOINT).write_bytes(b"not a checkpoint")
    with pytest.raises(TrainingError, match="cannot read the training checkpoint"):
        run(tiny, tmp_path, recs, [], LoopConfig(epochs=1), fingerprint={"task": "b"})


def test_a_nan_loss_stops_cleanly_keeping_the_last_good_epoch(tiny, tmp_path, monkeypatch):
    _, tok = load_base(tiny)
    recs = records(tok, 8)
    cfg = LoopConfig(epochs=3, batch_size=4, patience=3)
    real = loop.answer_loss
    calls = {"n": 0}

    def flaky(model, batch):
        calls["n"] += 1
        value = real(model, batch)
        return value * math.nan if calls["n"] > 3 else value  # epoch 2's second batch

    monkeypatch.setattr(loop, "answer_loss", flaky)
    model, res = run(tiny, tmp_path / "a", recs, [], cfg)
    assert res.state.stopped == "non-finite" and res.state.best_epoch == 1
    saved = torch.load(tmp_path / "a" / loop.CHECKPOINT, weights_only=True)
    assert saved["state"]["epoch"] == 1 and same(weights(model), saved["weights"])
    assert all(torch.isfinite(w).all() for w in weights(model).values())
    calls["n"] = 10  # NaN from the first step: nothing good to keep
    with pytest.raises(TrainingError, match="lower the learning rate"):
        run(tiny, tmp_path / "b", recs, [], cfg)


def test_records_refuse_outputs_longer_than_the_context_and_skip_long_prompts(tiny):
    from ladder.dataset import Example

    _, tok = load_base(tiny)
    exs = [
        Example("a", "hello world", "spam", line=3),
        Example("b", " ".join(["the"] * 40), "work"),
    ]
    recs, skipped = build_records(exs, lambda s: s, lambda o: " " + o, tok, max_seq_tokens=16)
    assert [r.id for r in recs] == ["a"] and skipped == ["b"]
    long = [Example("c", "hi", " ".join(["spam"] * 20), line=7)]
    with pytest.raises(DataError, match=r"'c' \(line 7\).*21 tokens"):
        build_records(long, lambda s: s, lambda o: " " + o, tok, max_seq_tokens=32)


def test_lora_on_modules_the_model_lacks_is_a_clear_error(tiny):
    lm, _ = load_base(tiny)
    with pytest.raises(ModelError, match=r"no linear layer named query_key_value.*q_proj"):
        attach_lora(lm, 4, 8, 0.0, ["query_key_value"], 0)


def test_top_half_adapters_train_only_the_upper_layers_and_backprop_stops_there(tiny):
    lm, tok = load_base(tiny)
    n = lm.config.num_hidden_layers
    model = attach_lora(lm, 4, 8, 0.0, ["q_proj", "v_proj"], 0, "top-half")
    adapted = {int(k.split(".layers.")[1].split(".")[0]) for k in loop.trainable_state(model)}
    assert adapted == set(range(n // 2, n))
    graded = {}  # does a layer's output need a gradient? Those that do not, backward skips
    for i, layer in enumerate(model.get_base_model().model.layers):

        def keep(m, args, out, i=i):
            graded[i] = (out[0] if isinstance(out, tuple) else out).requires_grad

        layer.register_forward_hook(keep)
    batch = collate(records(tok, n=4), tok.pad_token_id)
    loop.answer_loss(model, batch).backward()
    assert graded == {i: i >= n // 2 for i in range(n)}


def test_adapter_layers_the_model_lacks_are_a_clear_error(tiny):
    lm, _ = load_base(tiny)
    n = lm.config.num_hidden_layers
    with pytest.raises(ModelError, match=rf"layer\(s\) \[{n}\].*layers 0-{n - 1}"):
        attach_lora(lm, 4, 8, 0.0, ["q_proj"], 0, [0, n])
    with pytest.raises(ModelError, match="empty list"):
        attach_lora(lm, 4, 8, 0.0, ["q_proj"], 0, [])
    model = attach_lora(lm, 4, 8, 0.0, ["q_proj"], 0, [n - 1])
    assert {k.split(".layers.")[1].split(".")[0] for k in loop.trainable_state(model)} == {
        str(n - 1)
    }


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
def test_4bit_without_cuda_is_a_clear_error(tiny):
    with pytest.raises(ModelError, match="needs a CUDA GPU"):
        load_base(tiny, "4bit")
