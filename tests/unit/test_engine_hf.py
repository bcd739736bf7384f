"""The transformers engine on a tiny random Gemma 3: batching, prefix caching and multi-token
label scoring must give what one plain forward per prompt gives."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")
from ladder.engines.base import GenRequest, ScoreRequest  # noqa: E402
from ladder.engines.hf import MIN_PREFIX, HFEngine  # noqa: E402
from tiny_model import build_tiny_model  # noqa: E402

CHOICES = [" spam", " work", " alpha beta", " gamma delta epsilon"]


@pytest.fixture(scope="module")
def engines(tmp_path_factory):
    wide = build_tiny_model(tmp_path_factory.mktemp("wide"), sliding_window=512)
    narrow = build_tiny_model(tmp_path_factory.mktemp("narrow"), sliding_window=16)
    return {
        "wide": HFEngine("wide", str(wide), max_batch=4),
        "narrow": HFEngine("narrow", str(narrow), max_batch=4),
    }


def reference_score(eng: HFEngine, prompt: str, choice: str) -> float:
    p = eng.encode([prompt])[0]
    c = eng.tokenizer(choice, add_special_tokens=False).input_ids
    with torch.no_grad():
        lp = eng.lm(torch.tensor([p + c])).logits[0].float().log_softmax(-1)
    return sum(lp[len(p) - 1 + j, c[j]].item() for j in range(len(c)))


def reference_greedy(eng: HFEngine, prompt: str, n: int) -> list[int]:
    ids = eng.encode([prompt])[0]
    out = []
    with torch.no_grad():
        for _ in range(n):
            nxt = int(eng.lm(torch.tensor([ids + out])).logits[0, -1].argmax())
            if nxt in (eng.tokenizer.eos_token_id, eng.tokenizer.pad_token_id):
                break
            out.append(nxt)
    return out


SHORT = [
    "the email is spam",
    "hello world",
    "please review the contract today or tomorrow",
    "a b c",
]
PREFIX = " ".join(["the label of this email is one of spam work personal marketing automated"] * 5)
SHARED = [
    f"{PREFIX} input : {s} answer :"
    for s in [
        "hello",
        "meeting friday",
        "lottery password urgent please",
        "dinner with family and friend",
    ]
]


@pytest.mark.parametrize("which", ["wide", "narrow"])
def test_batched_scoring_equals_one_forward_per_prompt(engines, which):
    eng = engines[which]
    got = eng.score([ScoreRequest(p, CHOICES) for p in SHORT])
    for p, res in zip(SHORT, got):
        want = [reference_score(eng, p, c) for c in CHOICES]
        assert res.logprobs == pytest.approx(want, abs=1e-4)
        assert res.tokens_in == len(eng.encode([p])[0])


def test_shared_prefix_is_cached_and_exact(engines):
    eng = engines["wide"]
    assert len(eng.encode([PREFIX])[0]) > MIN_PREFIX
    eng._prefix_key = None
    got = eng.score([ScoreRequest(p, CHOICES) for p in SHARED])
    assert eng._prefix_key is not None and len(eng._prefix_key) >= MIN_PREFIX
    for p, res in zip(SHARED, got):
        assert res.logprobs == pytest.approx(
            [reference_score(eng, p, c) for c in CHOICES], abs=1e-4
        )
    hits = eng.stats["prefix_hits"]
    eng.score([ScoreRequest(SHARED[0], CHOICES)])  # a later call with the same prefix reuses it
    assert eng.stats["prefix_hits"] > hits


@pytest.mark.parametrize("which", ["wide", "narrow"])
def test_prefix_and_padding_beyond_sliding_window_are_exact(engines, which):
    """Window 16 < prompt length, unequal suffixes: masks use true positions, so padding is inert."""
    eng = engines[which]
    eng._prefix_key = None
    got = eng.score([ScoreRequest(p, CHOICES) for p in SHARED + SHORT])
    for p, res in zip(SHARED + SHORT, got):
        assert res.logprobs == pytest.approx(
            [reference_score(eng, p, c) for c in CHOICES], abs=1e-4
        )


@pytest.mark.parametrize("which", ["wide", "narrow"])
@pytest.mark.parametrize("prompts", [SHORT, SHARED])
def test_greedy_generation_equals_reference(engines, prompts, which):
    eng = engines[which]
    eng._prefix_key = None
    comps = eng.generate([GenRequest(p, max_tokens=6) for p in prompts])
    for p, comp in zip(prompts, comps):
        ref = reference_greedy(eng, p, 6)
        assert comp.text == eng.tokenizer.decode(ref, skip_special_tokens=True)
        assert comp.tokens_out == len(ref)
        assert comp.latency_s > 0 and comp.compute_s <= comp.latency_s


def test_stop_strings_and_seeded_sampling(engines):
    eng = engines["wide"]
    text = eng.generate([GenRequest(SHORT[0], max_tokens=8)])[0].text
    words = text.split()
    if len(words) >= 2:  # stop at the second generated word: the text ends before it
        stopped = eng.generate([GenRequest(SHORT[0], max_tokens=8, stop=[words[1]])])[0]
        assert words[1] not in stopped.text and stopped.finish_reason == "stop"
    a = eng.generate([GenRequest(SHORT[1], max_tokens=8, temperature=1.0, seed=3)])[0].text
    b = eng.generate([GenRequest(SHORT[1], max_tokens=8, temperature=1.0, seed=3)])[0].text
    assert a == b


def test_models_without_layer_types_get_a_4d_mask(tmp_path):
    """A Llama-style model (one mask for all layers) goes through the same code paths."""
    from transformers import LlamaConfig, LlamaForCausalLM

    gemma = build_tiny_model(tmp_path / "g")
    cfg = LlamaConfig(
        vocab_size=200,
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=2,
        num_key_value_heads=1,
        pad_token_id=0,
        eos_token_id=1,
        bos_token_id=2,
    )
    torch.manual_seed(0)
    LlamaForCausalLM(cfg).save_pretrained(tmp_path / "llama")
    from transformers import AutoTokenizer

    AutoTokenizer.from_pretrained(gemma).save_pretrained(tmp_path / "llama")
    eng = HFEngine("llama", str(tmp_path / "llama"), max_batch=4)
    got = eng.score([ScoreRequest(p, CHOICES) for p in SHARED + SHORT])
    for p, res in zip(SHARED + SHORT, got):
        assert res.logprobs == pytest.approx(
            [reference_score(eng, p, c) for c in CHOICES], abs=1e-4
        )


def test_long_prefix_is_prefilled_in_chunks_and_caps_rows(engines, monkeypatch):
    import ladder.engines.hf as hf

    eng = engines["narrow"]
    monkeypatch.setattr(hf, "PREFILL_CHUNK", 7)  # several chunks, window 16 crossing them
    monkeypatch.setattr(eng, "max_prefix_cache_bytes", 2.5 * 60 * eng.kv_bytes_per_token)
    eng._prefix_key = None
    got = eng.score([ScoreRequest(p, CHOICES) for p in SHARED])
    for p, res in zip(SHARED, got):
        assert res.logprobs == pytest.approx(
            [reference_score(eng, p, c) for c in CHOICES], abs=1e-4
        )
    assert eng._batches([5, 5, 5, 5], prefix=60) == [[0, 1], [2, 3]]


def test_batches_hold_little_padding_and_every_row_once(engines):
    eng = engines["narrow"]
    lengths = [400, 90, 100, 380, 95, 30, 100, 390, 85]
    batches = eng._batches(lengths)
    assert sorted(i for b in batches for i in b) == list(range(len(lengths)))
    for b in batches:  # rows x the longest row, of which at most a quarter padding
        padded = max(lengths[i] for i in b) * len(b)
        assert padded - sum(lengths[i] for i in b) <= 0.25 * padded
    long = next(b for b in batches if 0 in b)
    assert {0, 3, 7} <= set(long) and 5 not in long  # the long rows together, not the shortest
    rows = eng.max_batch  # equal lengths: full batches, as before
    assert eng._batches([50] * 10) == [
        list(range(i, min(i + rows, 10))) for i in range(0, 10, rows)
    ]


@pytest.mark.parametrize("which", ["wide", "narrow"])
def test_a_cached_prefix_is_cropped_when_later_prompts_share_less_of_it(engines, which):
    """Questions after a corpus: a first call whose questions share their first words must not
    make later calls recompute the corpus; the cache is cropped to what they share."""
    eng = engines[which]
    eng._prefix_key = None
    first = [f"{PREFIX} input : hello world one", f"{PREFIX} input : hello world two"]
    eng.generate([GenRequest(p, max_tokens=2) for p in first])
    long_key = len(eng._prefix_key)
    hits = eng.stats["prefix_hits"]
    later = f"{PREFIX} input : meeting friday"
    comp = eng.generate([GenRequest(later, max_tokens=6)])[0]
    assert len(eng._prefix_key) < long_key  # cropped, not rebuilt around this prompt
    assert eng.stats["prefix_hits"] == hits + 1 and comp.cached_tokens == len(eng._prefix_key)
    assert comp.text == eng.tokenizer.decode(
        reference_greedy(eng, later, 6), skip_special_tokens=True
    )


def test_the_cache_goes_by_its_new_name_without_a_deprecation_warning(engines):
    import warnings

    eng = engines["wide"]
    assert eng._cache_kw == "cache"
    with warnings.catch_warnings():
        warnings.simplefilter("error", FutureWarning)
        eng.score([ScoreRequest(SHARED[0], CHOICES)])
        eng.generate([GenRequest(SHORT[0], max_tokens=3)])


def test_generation_stops_when_a_label_is_complete(engines):
    eng = engines["wide"]
    first = reference_greedy(eng, SHORT[2], 6)
    word = eng.tokenizer.decode(first[:1], skip_special_tokens=True).strip()
    free = eng.generate([GenRequest(SHORT[2], max_tokens=6)])[0]
    done = eng.generate([GenRequest(SHORT[2], max_tokens=6, choices=[word, "zzz"])])[0]
    assert free.tokens_out == len(first) > 1
    assert done.tokens_out == 1 and done.text.strip() == word and done.finish_reason == "stop"


def test_the_projection_runs_only_where_logits_are_read_and_a_frozen_model_scores_the_same(
    engines,
):
    """A prefix prefill fills the cache only: no vocabulary projection. Each scoring forward
    projects one row per prompt (the last position), as a (rows, hidden) matrix; a model
    whose weights need no gradient (a base under LoRA) scores what its own forward gives."""
    eng = engines["wide"]
    head = eng.lm.get_output_embeddings()
    shapes: list[tuple[int, ...]] = []
    hook = head.register_forward_hook(lambda m, args, out: shapes.append(tuple(args[0].shape)))
    frozen = [p for p in eng.lm.parameters() if p.requires_grad]
    try:
        for p in frozen:
            p.requires_grad_(False)
        eng.reset_prefix_cache()
        got = eng.score([ScoreRequest(p, [" spam", " work"]) for p in SHARED])
    finally:
        hook.remove()
        for p in frozen:
            p.requires_grad_(True)
    hidden = eng.lm.config.hidden_size
    # the prefill projected nothing; each batch projected its rows' last positions only
    assert sum(rows for rows, _ in shapes) == len(SHARED) and {h for _, h in shapes} == {hidden}
    assert all(len(s) == 2 for s in shapes)
    for p, res in zip(SHARED, got):
        assert res.logprobs == pytest.approx(
            [reference_score(eng, p, c) for c in [" spam", " work"]], abs=1e-4
        )
