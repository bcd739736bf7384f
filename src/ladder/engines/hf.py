"""transformers engine: label scoring without generation, prefix caching, batched generation.

Why it is fast on a CPU:
- requests are sorted by length and packed into batches under a token budget (little padding);
- label scoring never generates: when every candidate is one token (` spam`, ` work`...), one
  forward with the logits of the last position scores them all; longer candidates reuse the
  prompt's key/value cache for their remaining tokens in a second, small forward;
- the longest token prefix shared by all prompts of a call (instructions, label definitions,
  fixed demonstrations, a whole document corpus) is run once; its key/value cache is kept and
  every prompt only runs its own suffix. The cache is reused across calls while the prefix stays
  the same.

Rows of a batch are laid out as [shared prefix][padding][own suffix]. Ladder builds the
attention masks itself from each token's true position (causal, and the sliding window of
Gemma-style local layers measured in positions, not cache slots), so padding never changes a
row's result: a batched, prefix-cached prompt scores exactly what it scores alone. Caches keep
every token (no sliding-window eviction), which is what makes those masks possible.

Number formats (`ladder.engines.numerics`): `dtype="auto"` measures this machine once and
picks fp32 or bf16 per phase (scoring, generation). The weights are held in bf16 only when
both phases run in it; a bf16 phase over fp32 weights runs under bf16 autocast, so switching
a phase never loses the fp32 weights. The default (`dtype=None`) stays fp32 on a CPU and bf16
on CUDA.
"""

from __future__ import annotations

import copy
import inspect
import json
import os
import time
from collections.abc import Callable
from contextlib import nullcontext
from typing import Any

from ladder.engines import numerics as nx
from ladder.engines.base import (
    Completion,
    GenRequest,
    ScoreRequest,
    Scores,
    answer_end,
    truncate_at_stop,
)
from ladder.errors import ModelError, require
from ladder.hfutil import transformers_offline

MIN_PREFIX = 48  # tokens: below this a shared prefix is not worth a separate forward
PREFILL_CHUNK = 1024  # tokens per forward when computing a prefix cache
# share of a batch's tokens that may be padding: a padded token costs what a real one does, and
# a few short rows batched with a long one are cheaper as a batch of their own (a race's round
# holds a random handful of lengths, not the similar lengths of a sorted split)
MAX_PADDING = 0.25


def _torch():
    return require("torch", "hf", "Running local models")


def common_prefix_len(seqs: list[list[int]]) -> int:
    if not seqs:
        return 0
    first = seqs[0]
    n = min(len(s) for s in seqs)
    for s in seqs[1:]:
        i = 0
        while i < n and s[i] == first[i]:
            i += 1
        n = i
    return n


def model_parts(model):
    """The body that makes hidden states, the vocabulary projection, and its logit soft-cap.

    The projection (`lm_head`, 262k rows for Gemma 3) costs more than the body of a small
    model, so training and label scoring apply it only at the positions they read.
    """
    lm = model.get_base_model() if hasattr(model, "get_base_model") else model
    body = getattr(lm, lm.base_model_prefix)
    return body, lm.get_output_embeddings(), getattr(lm.config, "final_logit_softcapping", None)


def cache_keyword(lm) -> str:
    """The forward argument that takes a key/value cache: `cache` from transformers 5.24 on.

    `past_key_values` is deprecated there (a FutureWarning every call, removed in 5.40); older
    5.x releases only know `past_key_values`. A PEFT wrapper forwards `**kwargs`, so the base
    model's signature decides.
    """
    base = lm.get_base_model() if hasattr(lm, "get_base_model") else lm
    params = inspect.signature(type(base).forward).parameters
    return "cache" if "cache" in params else "past_key_values"


def _finished(text: str, req: GenRequest) -> bool:
    """A row stops at a stop string or as soon as its answer is complete (`answer_end`)."""
    return any(s in text for s in req.stop if s) or answer_end(text, req) is not None


def _cut(text: str, req: GenRequest) -> str:
    text, _ = truncate_at_stop(text, req.stop)
    end = answer_end(text, req)
    return text[:end] if end is not None else text


class HFEngine:
    supports_scoring = True
    supports_adapters = True  # PEFT adapters load on `lm` and switch per request
    price_basis = "hour"

    def __init__(
        self,
        model: str,
        path: str,
        *,
        device: str | None = None,
        dtype: str | None = None,
        threads: int | None = None,
        max_batch: int = 8,
        max_batch_tokens: int = 4096,
        prefix_cache: bool = True,
        max_prefix_cache_bytes: float = 2e9,
    ):
        transformers = transformers_offline()
        torch = _torch()
        self._configure(model, path, device, dtype, threads)
        self._limits(max_batch, max_batch_tokens, prefix_cache, max_prefix_cache_bytes)
        try:
            tokenizer = transformers.AutoTokenizer.from_pretrained(path)
        except (OSError, ValueError) as exc:
            raise ModelError(
                f"cannot load model {model!r} from {path}: {exc}",
                fix="check the folder holds a transformers model (config.json, weights, tokenizer).",
            ) from None
        self._attach(self._load_weights(transformers, torch), tokenizer)
        self._owns_weights = True

    def _load_weights(self, transformers, torch):
        try:
            lm = transformers.AutoModelForCausalLM.from_pretrained(
                self.path, dtype=getattr(torch, self.dtype)
            )
        except (OSError, ValueError) as exc:
            raise ModelError(
                f"cannot load model {self.model!r} from {self.path}: {exc}",
                fix="check the folder holds a transformers model (config.json, weights, tokenizer).",
            ) from None
        return lm.to(self.device)

    @classmethod
    def from_model(
        cls,
        model: str,
        lm,
        tokenizer,
        *,
        path: str = "",
        info: dict[str, Any] | None = None,
        dtypes: nx.Numerics | None = None,
        max_batch: int = 8,
        max_batch_tokens: int = 4096,
        prefix_cache: bool = True,
        max_prefix_cache_bytes: float = 2e9,
    ) -> HFEngine:
        """An engine around a model already in memory (e.g. a base model with a LoRA adapter).

        `lm` is used as it is (its device and dtype: the weights are the caller's, never
        converted); `dtypes` runs a phase in bf16 over fp32 weights by autocast; `info` adds
        facts to `info()` (adapter...).
        """
        self = cls.__new__(cls)
        # the caller loaded the model and chose the threads: keep them
        threads = _torch().get_num_threads()
        held = str(lm.dtype).removeprefix("torch.")
        self._configure(model, path, lm.device.type, None, threads)
        self.dtype = held
        self.numerics = _held_in(dtypes or _as_loaded(held), held)
        self._limits(max_batch, max_batch_tokens, prefix_cache, max_prefix_cache_bytes)
        self._attach(lm, tokenizer)
        self._owns_weights = False
        self.extra_info = dict(info or {})
        return self

    def _configure(self, model, path, device, dtype, threads) -> None:
        torch = _torch()
        self.model = model
        self.path = path
        self.device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        if self.device == "cpu":
            torch.set_num_threads(threads or os.cpu_count() or 1)
        self.numerics = engine_numerics(self.device, dtype, model)
        # an auto choice still to be checked on dev keeps fp32 weights to compare against
        self.dtype = nx.FP32 if self.numerics.pending else self.numerics.weights()
        self._compute: str | None = None  # the dtype the prefix cache was computed in
        self.extra_info: dict[str, Any] = {}
        # called with a phase in `numerics.deferred` before that phase's first use (the climb's
        # context runs the phase's dev check there); None: nobody waits to check
        self.check_deferred: Callable[[str], None] | None = None

    def _limits(self, max_batch, max_batch_tokens, prefix_cache, max_prefix_cache_bytes) -> None:
        self.max_batch = max_batch
        self.max_batch_tokens = max_batch_tokens
        self.use_prefix_cache = prefix_cache
        self.max_prefix_cache_bytes = max_prefix_cache_bytes

    def _attach(self, lm, tokenizer) -> None:
        self.tokenizer = tokenizer
        self.lm = lm
        self.lm.eval()
        self._kv_bytes()
        if self.tokenizer.pad_token_id is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token
        self._choice_ids: dict[str, list[int]] = {}
        self._prefix_key: tuple[int, ...] | None = None
        self._prefix_cache: Any = None  # a transformers DynamicCache
        self.stats = {"prefix_hits": 0, "prefix_tokens_saved": 0}
        self._cache_kw = cache_keyword(lm)

    # ------------------------------------------------------------ number formats

    def _phase(self, phase: str):
        """Run `phase` in its dtype: bf16 over fp32 weights by autocast, else as the weights are."""
        want = self.numerics.phases[phase]
        if self._compute not in (None, want):
            self.reset_prefix_cache()  # its keys/values were computed in the other dtype
        self._compute = want
        if want == nx.BF16 and self.dtype != nx.BF16:
            return _torch().autocast(self.device, dtype=_torch().bfloat16)
        return nullcontext()

    def use_dtypes(self, phases: dict[str, str]) -> None:
        """Run scoring/generation in these dtypes from now on (the dev check's switch).

        Weights this engine loaded are converted to bf16 when both phases run in it, and
        reloaded in fp32 from the folder when a phase goes back; a caller's weights stay.
        """
        self.numerics.phases.update(phases)
        want = self.numerics.weights()
        if getattr(self, "_owns_weights", False) and want != self.dtype:
            torch = _torch()
            self.dtype = want
            if want == nx.BF16:
                self.lm = self.lm.to(torch.bfloat16)
            else:  # a bf16 copy cannot give the fp32 weights back: read them again
                self.lm = None
                self.lm = self._load_weights(transformers_offline(), torch).eval()
            self._kv_bytes()
        self.reset_prefix_cache()
        self._compute = None

    def _kv_bytes(self) -> None:
        cfg = self.lm.config
        head_dim = getattr(cfg, "head_dim", None) or cfg.hidden_size // cfg.num_attention_heads
        kv_heads = getattr(cfg, "num_key_value_heads", None) or cfg.num_attention_heads
        # keys + values of every layer, per token (caches keep every token: see the module doc)
        self.kv_bytes_per_token = (
            2 * cfg.num_hidden_layers * kv_heads * head_dim * self.lm.dtype.itemsize
        )

    # ------------------------------------------------------------ helpers

    @property
    def context_length(self) -> int | None:
        """The longest sequence (prompt + answer, tokens) the model was trained for."""
        return getattr(self.lm.config, "max_position_embeddings", None)

    def count_tokens(self, text: str) -> int:
        return len(self.tokenizer(text).input_ids)

    def encode(self, prompts: list[str]) -> list[list[int]]:
        return list(self.tokenizer(prompts).input_ids)

    def choice_ids(self, choice: str) -> list[int]:
        if choice not in self._choice_ids:
            ids = self.tokenizer(choice, add_special_tokens=False).input_ids
            if not ids:
                raise ModelError(f"the candidate {choice!r} tokenizes to nothing.")
            self._choice_ids[choice] = ids
        return self._choice_ids[choice]

    def _batches(self, lengths: list[int], prefix: int = 0) -> list[list[int]]:
        """Indices grouped longest-first into batches under the padded-token budget.

        A batch ends where the next row would make more than `MAX_PADDING` of it padding.

        Each row of a batch holds its own copy of the shared prefix's key/value cache, so a long
        prefix (a whole corpus) also caps the rows: rows x prefix x bytes/token <= the budget.
        """
        rows_cap = self.max_batch
        if prefix:
            rows_cap = max(
                1,
                min(
                    rows_cap, int(self.max_prefix_cache_bytes // (prefix * self.kv_bytes_per_token))
                ),
            )
        order = sorted(range(len(lengths)), key=lambda i: -lengths[i])
        batches: list[list[int]] = []
        cur: list[int] = []
        real = 0  # tokens of the rows in `cur`
        for i in order:
            width = lengths[cur[0]] if cur else lengths[i]
            padded = width * (len(cur) + 1)
            if cur and (
                len(cur) >= rows_cap
                or padded > self.max_batch_tokens
                or padded - real - lengths[i] > MAX_PADDING * padded
            ):
                batches.append(cur)
                cur, real = [], 0
            cur.append(i)
            real += lengths[i]
        if cur:
            batches.append(cur)
        return batches

    def _shared_prefix(self, seqs: list[list[int]]) -> int:
        """Tokens shared by every prompt of the call, leaving each at least one of its own."""
        if not self.use_prefix_cache or (len(seqs) < 2 and self._prefix_key is None):
            return 0
        n = min(common_prefix_len(seqs), min(len(s) for s in seqs) - 1)
        if self._prefix_key is not None:
            # reuse what these prompts share with the cached prefix, even when the cache ran on
            # into the first words of earlier questions (it is cropped), unless recomputing
            # costs less than the rows re-running the difference
            kept = min(n, common_prefix_len([list(self._prefix_key), seqs[0]]))
            if kept >= MIN_PREFIX and (n - kept) * len(seqs) <= kept:
                return kept
        return n if n >= MIN_PREFIX else 0

    def _prefix_kv(self, tokens: list[int]):
        """The key/value cache of a prefix, computed once and kept while prompts share it."""
        torch = _torch()
        key, old = tuple(tokens), self._prefix_key
        if old is not None and len(key) < len(old) and old[: len(key)] == key:
            for layer in self._prefix_cache.layers:  # keep the shared part of the cached prefix
                layer.keys = layer.keys[..., : len(key), :]
                layer.values = layer.values[..., : len(key), :]
            self._prefix_key = old = key
        if key != old:
            cache = self._new_cache()
            ids = torch.tensor([tokens], device=self.device)
            # in chunks, so the attention masks of a long prefix (a whole corpus) stay small
            for start in range(0, len(tokens), PREFILL_CHUNK):
                end = min(start + PREFILL_CHUNK, len(tokens))
                qpos = torch.arange(start, end, device=self.device)[None]
                kpos = torch.arange(end, device=self.device)[None]
                self._run(ids[:, start:end], qpos, cache, kpos, logits=False)
            self._prefix_key, self._prefix_cache = key, cache
        else:
            self.stats["prefix_hits"] += 1
        return self._prefix_cache

    def _new_cache(self):
        from transformers import DynamicCache

        return DynamicCache()  # full layers everywhere: sliding windows are applied by our masks

    @staticmethod
    def _select(cache, rows):
        """A cache for the given batch rows; indexing makes new tensors, the source stays intact."""
        sub = copy.copy(cache)
        sub.layers = [copy.copy(layer) for layer in cache.layers]
        sub.batch_select_indices(rows)
        return sub

    def _masks(self, qpos, kpos):
        """Additive masks from true positions (-1 = padding): causal, plus sliding windows."""
        torch = _torch()
        q, k = qpos[:, :, None], kpos[:, None, :]
        allowed = (k >= 0) & (k <= q)
        # a padding query attends to itself only, so it stays finite and harmless
        pad_q = qpos < 0
        if pad_q.any():
            eye = torch.zeros_like(allowed)
            nq = qpos.shape[1]
            eye[:, torch.arange(nq), kpos.shape[1] - nq + torch.arange(nq)] = True
            allowed = allowed | (eye & pad_q[:, :, None])
        neg = torch.finfo(self.lm.dtype).min

        def additive(m):
            return torch.zeros(m.shape, dtype=self.lm.dtype, device=self.device).masked_fill(
                ~m, neg
            )[:, None]

        cfg = self.lm.config
        types = set(getattr(cfg, "layer_types", None) or [])
        if not types:
            return additive(allowed)
        out = {}
        for t in types:
            m = allowed
            if t in ("sliding_attention", "chunked_attention") and getattr(
                cfg, "sliding_window", None
            ):
                m = m & ((q - k) < cfg.sliding_window)
            out[t] = additive(m)
        return out

    def _run(self, ids, qpos, cache, kpos, *, logits: bool = True):
        """One forward over new tokens `ids` at positions `qpos`, keys at `kpos` (cache + new).

        Returns the fp32 logits of each row's last position, or None with `logits=False` (a
        prefill, which only fills the cache and needs no vocabulary projection). The projection
        is applied here to a contiguous (rows, hidden) matrix: the model's own forward slices a
        (rows, 1, hidden) view instead, and on a CPU a bf16 matmul of such a view with a weight
        that needs no gradient (a frozen base under LoRA) copies the whole 262k-row projection
        once per row (10 s for 8 rows instead of 0.03 s, torch 2.13).
        """
        body = model_parts(self.lm)[0]
        hidden = body(
            input_ids=ids,
            attention_mask=self._masks(qpos, kpos),
            position_ids=qpos.clamp(min=0),
            use_cache=True,
            **{self._cache_kw: cache},
        ).last_hidden_state
        return self._project(hidden[:, -1].contiguous()) if logits else None

    def _project(self, hidden):
        """fp32 logits of (rows, hidden) states: the vocabulary projection, then the soft-cap."""
        _, head, cap = model_parts(self.lm)
        out = head(hidden).float()
        return _torch().tanh(out / cap) * cap if cap else out

    def _forward(self, seqs: list[list[int]], prefix: int):
        """Run a batch: [prefix (cached)][left padding][suffix]. Returns last logits, cache, key positions."""
        torch = _torch()
        rows = len(seqs)
        suffixes = [s[prefix:] for s in seqs]
        width = max(map(len, suffixes))
        ids = torch.full((rows, width), self.tokenizer.pad_token_id, dtype=torch.long)
        qpos = torch.full((rows, width), -1, dtype=torch.long)
        for r, s in enumerate(suffixes):
            ids[r, width - len(s) :] = torch.tensor(s)
            qpos[r, width - len(s) :] = prefix + torch.arange(len(s))
        ids, qpos = ids.to(self.device), qpos.to(self.device)
        if prefix:
            cache = self._select(
                self._prefix_kv(seqs[0][:prefix]),
                torch.zeros(rows, dtype=torch.long, device=self.device),
            )
            kpos = torch.cat(
                [torch.arange(prefix, device=self.device).expand(rows, prefix), qpos], dim=1
            )
            self.stats["prefix_tokens_saved"] += prefix * rows
        else:
            cache, kpos = self._new_cache(), qpos
        return self._run(ids, qpos, cache, kpos), cache, kpos

    # ------------------------------------------------------------ scoring

    def score(self, requests: list[ScoreRequest]) -> list[Scores]:
        torch = _torch()
        seqs = self.encode([r.prompt for r in requests])
        prefix = self._shared_prefix(seqs)
        results: list[Scores | None] = [None] * len(requests)
        for batch in self._batches([len(s) - prefix for s in seqs], prefix):
            t0 = time.perf_counter()
            with torch.inference_mode(), self._phase("score"):
                lps = self._score_batch(
                    [seqs[i] for i in batch], [requests[i].choices for i in batch], prefix
                )
            dt = time.perf_counter() - t0
            for j, i in enumerate(batch):
                results[i] = Scores(lps[j], len(seqs[i]), dt, dt / len(batch))
        return results  # type: ignore[return-value]

    def _score_batch(
        self, seqs: list[list[int]], choices: list[list[str]], prefix: int
    ) -> list[list[float]]:
        logits, cache, kpos = self._forward(seqs, prefix)
        first = logits.log_softmax(-1)
        cids = [[self.choice_ids(c) for c in cs] for cs in choices]
        scores = [[first[b, c[0]].item() for c in cs] for b, cs in enumerate(cids)]
        if any(len(c) > 1 for cs in cids for c in cs):
            self._score_rest(cache, kpos, cids, scores)
        return scores

    def _score_rest(self, cache, kpos, cids, scores) -> None:
        """Add log-probs of tokens 2..n of each candidate, reusing the prompts' KV cache.

        Candidates are run longest first, so a chunk holds continuations of similar length
        (little padding), and the vocabulary projection is applied only at their real tokens.
        """
        torch = _torch()
        pairs = [(b, c) for b, cs in enumerate(cids) for c, ids in enumerate(cs) if len(ids) > 1]
        pairs.sort(key=lambda p: len(cids[p[0]][p[1]]), reverse=True)
        body = model_parts(self.lm)[0]
        chunk = max(1, self.max_batch_tokens * 4 // max(kpos.shape[1], 1))
        for start in range(0, len(pairs), chunk):
            part = pairs[start : start + chunk]
            rows = torch.tensor([b for b, _ in part], device=self.device)
            sub = self._select(cache, rows)
            width = max(len(cids[b][c]) - 1 for b, c in part)
            cont = torch.full((len(part), width), self.tokenizer.pad_token_id, dtype=torch.long)
            qpos = torch.full((len(part), width), -1, dtype=torch.long)
            nxt = kpos[rows].max(-1).values + 1  # the position after each row's last token
            for r, (b, c) in enumerate(part):
                rest = cids[b][c][:-1]  # inputs t0..t(n-2) predict t1..t(n-1)
                cont[r, : len(rest)] = torch.tensor(rest)
                qpos[r, : len(rest)] = int(nxt[r]) + torch.arange(len(rest))
            cont, qpos = cont.to(self.device), qpos.to(self.device)
            hidden = body(
                input_ids=cont,
                attention_mask=self._masks(qpos, torch.cat([kpos[rows], qpos], dim=1)),
                position_ids=qpos.clamp(min=0),
                use_cache=True,
                **{self._cache_kw: sub},
            ).last_hidden_state
            # real positions only: row r's token j predicts its candidate's token j + 1
            at = [(r, j) for r, (b, c) in enumerate(part) for j in range(len(cids[b][c]) - 1)]
            r_idx = torch.tensor([r for r, _ in at], device=self.device)
            j_idx = torch.tensor([j for _, j in at], device=self.device)
            logits = self._project(hidden[r_idx, j_idx])
            target = torch.tensor(
                [
                    cids[b][c][j + 1]
                    for r, (b, c) in enumerate(part)
                    for j in range(len(cids[b][c]) - 1)
                ],
                device=self.device,
            )
            lp = logits.log_softmax(-1).gather(1, target[:, None])[:, 0].double()
            sums = torch.zeros(len(part), dtype=lp.dtype, device=self.device).index_add_(
                0, r_idx, lp
            )
            for r, (b, c) in enumerate(part):
                scores[b][c] += float(sums[r])

    # ------------------------------------------------------------ generation

    def generate(self, requests: list[GenRequest]) -> list[Completion]:
        if "generate" in self.numerics.deferred and self.check_deferred is not None:
            # the dev check of bf16 generation, which waited for this first use
            self.check_deferred("generate")
        torch = _torch()
        groups: dict[tuple, list[int]] = {}
        for i, r in enumerate(requests):
            key = (r.max_tokens, r.temperature, tuple(r.stop), r.seed, tuple(r.choices or ()))
            groups.setdefault((*key, json.dumps(r.json_schema, sort_keys=True)), []).append(i)
        results: list[Completion | None] = [None] * len(requests)
        for idxs in groups.values():
            seqs = self.encode([requests[i].prompt for i in idxs])
            prefix = self._shared_prefix(seqs)
            req = requests[idxs[0]]
            gen = torch.Generator(device=self.device)
            gen.manual_seed(req.seed if req.seed is not None else 0)
            for batch in self._batches([len(s) - prefix for s in seqs], prefix):
                with torch.inference_mode(), self._phase("generate"):
                    comps = self._generate_batch([seqs[j] for j in batch], req, prefix, gen)
                for j, comp in zip(batch, comps):
                    results[idxs[j]] = comp
        return results  # type: ignore[return-value]

    def _generate_batch(
        self, seqs: list[list[int]], req: GenRequest, prefix: int, gen
    ) -> list[Completion]:
        """Greedy or temperature sampling, token by token, each row stopping on EOS or a stop string."""
        torch = _torch()
        t0 = time.perf_counter()
        logits, cache, kpos = self._forward(seqs, prefix)
        rows = len(seqs)
        eos = {self.tokenizer.eos_token_id, self.tokenizer.pad_token_id, *self._extra_eos()}
        out: list[list[int]] = [[] for _ in range(rows)]
        texts = [""] * rows
        reason = ["length"] * rows
        live = list(range(rows))
        pos = kpos.max(-1).values + 1  # next position of each row
        for _ in range(req.max_tokens):
            if req.temperature > 0:
                probs = (logits / req.temperature).softmax(-1)
                nxt = torch.multinomial(probs, 1, generator=gen).squeeze(-1)
            else:
                nxt = logits.argmax(-1)
            for r in list(live):
                tok = int(nxt[r])
                if tok in eos:
                    reason[r] = "stop"
                    live.remove(r)
                    continue
                out[r].append(tok)
                texts[r] = self.tokenizer.decode(out[r], skip_special_tokens=True)
                if _finished(texts[r], req):
                    reason[r] = "stop"
                    live.remove(r)
            if not live:
                break
            kpos = torch.cat([kpos, pos[:, None]], dim=1)
            logits = self._run(nxt[:, None], pos[:, None], cache, kpos)
            pos = pos + 1
        dt = time.perf_counter() - t0
        comps = []
        for r, seq in enumerate(seqs):
            comps.append(
                Completion(
                    _cut(texts[r], req),
                    len(seq),
                    len(out[r]),
                    dt,
                    dt / rows,
                    reason[r],
                    prefix,
                )
            )
        return comps

    def _extra_eos(self) -> set[int]:
        ids = getattr(self.lm.generation_config, "eos_token_id", None)
        if ids is None:
            return set()
        return set(ids) if isinstance(ids, list) else {ids}

    # ------------------------------------------------------------ misc

    def info(self) -> dict[str, Any]:
        torch = _torch()
        return {
            "engine": "hf",
            "price_basis": self.price_basis,
            "model": self.model,
            "path": self.path,
            "device": self.device,
            "dtype": self.dtype,
            "dtypes": {p: self.numerics.phases[p] for p in nx.INFERENCE},
            "dtype_source": self.numerics.source,
            "threads": torch.get_num_threads() if self.device == "cpu" else None,
            "parameters": sum(p.numel() for p in self.lm.parameters()),
            "max_batch": self.max_batch,
            "prefix_cache": self.use_prefix_cache,
            "context_length": self.context_length,
            **self.extra_info,
        }

    def reset_prefix_cache(self) -> None:
        """Forget the cached prefix: its keys/values are stale once the weights change (an adapter)."""
        self._prefix_key, self._prefix_cache = None, None

    def close(self) -> None:
        self._prefix_cache = None
        self.lm = None


def engine_numerics(device: str, dtype: str | None, model: str = "") -> nx.Numerics:
    """The per-phase dtypes of an engine asked for `dtype` (None: the device's fixed default)."""
    if dtype is None:  # bf16 is slower than fp32 on CPUs without bf16 units
        d = nx.BF16 if device == "cuda" else nx.FP32
        why = f"the default on {device} (`--dtype auto` measures this machine)"
        return nx.Numerics(dict.fromkeys(nx.PHASES, d), "default", dict.fromkeys(nx.PHASES, why))
    if dtype == "float16":  # an explicit half-precision model (task.yaml options)
        why = "asked for float16 (the model's `options.dtype`)"
        return nx.Numerics(dict.fromkeys(nx.PHASES, dtype), "forced", dict.fromkeys(nx.PHASES, why))
    if dtype not in nx.CHOICES:
        raise ModelError(
            f"model {model!r}: dtype {dtype!r} is not a number format Ladder can run.",
            fix="use auto, float32 or bfloat16 (`--dtype`, or `options: {dtype: ...}` under "
            "`models:` in task.yaml).",
        )
    return nx.choose(device, dtype)


def _as_loaded(held: str) -> nx.Numerics:
    why = f"{held}, as the caller loaded the model"
    return nx.Numerics(dict.fromkeys(nx.PHASES, held), "model", dict.fromkeys(nx.PHASES, why))


def _held_in(chosen: nx.Numerics, held: str) -> nx.Numerics:
    """A choice for weights held in `held`: fp32 phases over bf16 weights run in bf16.

    Over bf16 weights no phase can be checked against fp32 (there are no fp32 weights to
    answer with), so nothing stays pending: such a phase says it runs as the model is held.
    """
    out = nx.Numerics(
        dict(chosen.phases), chosen.source, dict(chosen.reasons), chosen.probe,
        dict(chosen.agreement), chosen.pending, chosen.deferred,
    )  # fmt: skip
    if held == nx.FP32:
        return out
    for p in nx.INFERENCE:
        if out.phases[p] != held or p in out.pending:
            out.phases[p] = held
            out.reasons[p] = f"the model is held in {held} (it was trained so)"
    out.pending, out.deferred = (), ()
    return out
