"""LoRA adapters: attach them to a base model, save them as artifacts, load and merge them.

An adapter folder is a standard PEFT folder (`adapter_config.json`,
`adapter_model.safetensors`: `peft.PeftModel.from_pretrained(base, folder)` loads it) plus
Ladder's metadata file `ladder-adapter.json`, which says how to call it. Its fields:

- `format`: "ladder-adapter/1".
- `name`: e.g. "email-triage-lora"; `rung`: "lora" | "distill"; `run_id`; `created_at`;
  `ladder_version`.
- `base_model`: {`name` (Ladder model name), `path` (folder it was trained on), `sha256` (of the
  base weights: an adapter is refused on other weights), `quantize`: "none" | "4bit"}.
- `task`: {`name`, `kind`, `config_hash`, `labels` (classify) or `output_schema` (extract)}.
- `prompt`: how to render a request exactly as in training: {`template` (Jinja2, see
  `ladder.rungs.prompts`), `parts` ({instructions, label_block, answer_format} booleans),
  `instructions`, `input_name`, `output_name`, `max_input_chars`}. Inputs longer than
  `max_input_chars` are cut at a word boundary (`ladder.rungs.prompts.truncate`).
- `answer`: {`mode`: "score" (log-likelihood of each of `choices` after the prompt, pick the
  best) | "generate" (greedy until EOS or a `stop` string, then parse), `choices` (e.g.
  [" spam", " work"]) or null, `stop`, `max_new_tokens`}. Answers start with a space and end
  with EOS in training.
- `data`: {`source` ("train split" or "teacher: ..."), `examples`, `skipped_too_long`,
  `data_hash` (sha256 of the task's data file), `records_hash` (the tokenised training set)}.
- `hyperparameters`: LoRA (`r`, `alpha`, `dropout`, `target_modules`) and loop settings
  (`epochs`, `lr`, `warmup`, `batch_size`, `batch_tokens`, `grad_accum`, `patience`, `seed`,
  `max_seq_tokens`).
- `training`: the scorecard's `extras["training"]` (seconds, device, tokens/s, history...).
- `scores`: {`dev`: {...}, `holdout`: {...}}: point estimates of the task's metrics.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import time
import warnings
from pathlib import Path
from typing import Any

from ladder.errors import ModelError, require
from ladder.fsutil import atomic_write_json
from ladder.hfutil import transformers_offline

META_FILE = "ladder-adapter.json"
FORMAT = "ladder-adapter/1"
DEFAULT_TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj"]


def _torch():
    return require("torch", "hf", "Training adapters")


def _peft():
    return require("peft", "train", "Training LoRA adapters")


def device_for(quantize: str) -> str:
    torch = _torch()
    return "cuda" if quantize == "4bit" or torch.cuda.is_available() else "cpu"


def load_base(
    path: str,
    quantize: str = "none",
    gpu: int = 0,
    dtype: str | None = None,
    hold: str | None = None,
):
    """The base model for training: fp32 on CPU, bf16 on CUDA (GPU `gpu`), 4-bit NF4 for QLoRA.

    On a CPU the weights stay fp32 unless `hold="bfloat16"`: the frozen base is then held in
    bf16 (it gets no gradient, so it needs no fp32 master copy; the LoRA matrices PEFT adds
    stay fp32), which spares autocast recasting every weight at every forward (703 against 450
    real tokens/s under autocast on an avx512_bf16 CPU: benchmarks/dtype.py). Otherwise a
    bf16 forward runs under autocast (`LoopConfig.autocast`). On CUDA `dtype="float32"`
    keeps the weights fp32 instead of bf16.
    """
    torch = _torch()
    transformers = transformers_offline()
    kwargs: dict[str, Any] = {"dtype": torch.bfloat16 if hold == "bfloat16" else torch.float32}
    if quantize == "4bit":
        kwargs = {**_qlora_kwargs(torch, transformers), "device_map": {"": gpu}}
    elif torch.cuda.is_available():
        held = torch.float32 if dtype == "float32" else torch.bfloat16
        kwargs = {"dtype": held, "device_map": {"": gpu}}
    try:
        tokenizer = transformers.AutoTokenizer.from_pretrained(path)
        lm = transformers.AutoModelForCausalLM.from_pretrained(path, **kwargs)
    except (OSError, ValueError) as exc:
        raise ModelError(
            f"cannot load the base model from {path}: {exc}",
            fix="check the folder holds a transformers model (config.json, weights, tokenizer).",
        ) from None
    if quantize == "4bit":
        lm = _peft().prepare_model_for_kbit_training(lm, use_gradient_checkpointing=False)
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    return lm, tokenizer


def _qlora_kwargs(torch, transformers) -> dict[str, Any]:
    if not torch.cuda.is_available():
        raise ModelError(
            "4-bit QLoRA (`quantize: 4bit`) needs a CUDA GPU, and none is visible here.",
            fix="train without it (LoRA in full precision works on a CPU), or run on a machine with CUDA.",
        )
    require("bitsandbytes", "qlora", "4-bit QLoRA")
    quant = transformers.BitsAndBytesConfig(
        load_in_4bit=True,
        bnb_4bit_quant_type="nf4",
        bnb_4bit_use_double_quant=True,
        bnb_4bit_compute_dtype=torch.bfloat16,
    )
    return {"quantization_config": quant, "dtype": torch.bfloat16, "device_map": {"": 0}}


@contextlib.contextmanager
def quiet():
    """PEFT touches a transformers property deprecated in v5: not the user's concern."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=FutureWarning, module="transformers")
        yield


def linear_module_names(lm) -> list[str]:
    """Short names of the linear layers LoRA can target (q_proj, up_proj...)."""
    names = set()
    for name, module in lm.named_modules():
        if type(module).__name__.startswith("Linear") and name:
            names.add(name.rsplit(".", 1)[-1])
    return sorted(names)


def decoder_layers(lm) -> int:
    """How many decoder layers (transformer blocks) the model has."""
    cfg = getattr(lm, "config", None)
    cfg = getattr(cfg, "text_config", None) or cfg
    n = getattr(cfg, "num_hidden_layers", None)
    if not n:
        raise ModelError(
            "the base model does not say how many decoder layers it has (num_hidden_layers), "
            "so LoRA cannot choose layers.",
            fix="set `rungs.lora.layers: all`.",
        )
    return int(n)


def layer_indices(lm, layers: str | list[int]) -> list[int] | None:
    """The decoder layers that carry adapters: None for all of them.

    `top-half`: the upper half only. Below the lowest adapted layer nothing needs a gradient,
    so the backward pass stops there (training took 0.65 of all layers' time on email-triage:
    benchmarks/lora_recipe.py --tag layers). `LoraConfig` has refused other strings, empty
    lists and negative indices; the model's own layer count is known only here.
    """
    if layers == "all":
        return None
    n = decoder_layers(lm)
    if isinstance(layers, str):  # top-half
        return list(range(n // 2, n))
    if not layers:
        raise ModelError(
            "rungs.lora.layers is an empty list: LoRA would train nothing.",
            fix=f"name some of the layers 0-{n - 1}, or use `top-half` or `all`.",
        )
    wrong = sorted({i for i in layers if not 0 <= i < n})
    if wrong:
        raise ModelError(
            f"rungs.lora.layers names layer(s) {wrong}, and the base model has layers 0-{n - 1}.",
            fix=f"use indices from 0 to {n - 1}, `top-half` or `all`.",
        )
    return sorted(set(layers))


def attach_lora(
    lm,
    r: int,
    alpha: int,
    dropout: float,
    targets: list[str],
    seed: int,
    layers: str | list[int] = "all",
):
    """Wrap `lm` with fresh LoRA matrices (seeded) on `layers` (see `layer_indices`)."""
    torch = _torch()
    peft = _peft()
    known = linear_module_names(lm)
    missing = [t for t in targets if t not in known]
    if missing:
        raise ModelError(
            f"the base model has no linear layer named {', '.join(missing)}, so LoRA cannot "
            "target it.",
            fix=f"set `rungs.lora.target_modules` to some of: {', '.join(known)}.",
        )
    config = peft.LoraConfig(
        r=r,
        lora_alpha=alpha,
        lora_dropout=dropout,
        target_modules=targets,
        layers_to_transform=layer_indices(lm, layers),
        task_type="CAUSAL_LM",
    )
    torch.manual_seed(seed)  # LoRA's A matrices are random: the seed makes training repeatable
    try:
        with quiet():
            return peft.get_peft_model(lm, config)
    except (ValueError, TypeError) as exc:
        raise ModelError(
            f"LoRA cannot be attached to this model on {', '.join(targets)}: {exc}",
            fix=f"choose other `target_modules` among: {', '.join(known)}.",
        ) from None


def base_checksum(path: str | Path) -> str:
    """sha256 of the base weights: from the embedded model's record, else hashed once here."""
    path = Path(path)
    record = path / "ladder-model.json"
    if record.exists():
        try:
            return json.loads(record.read_text())["weights_sha256"]
        except (ValueError, KeyError):
            pass
    cached = path / ".ladder-sha256"
    files = sorted(path.glob("*.safetensors")) or sorted(path.glob("*.bin"))
    stamp = ";".join(f"{f.name}:{f.stat().st_size}:{f.stat().st_mtime_ns}" for f in files)
    if cached.exists() and cached.read_text().startswith(stamp + "\n"):
        return cached.read_text().split("\n", 1)[1].strip()
    h = hashlib.sha256()
    for f in files:
        with f.open("rb") as fh:
            while chunk := fh.read(8 << 20):
                h.update(chunk)
    digest = h.hexdigest()
    with contextlib.suppress(OSError):  # a read-only model folder: hash again next time
        cached.write_text(f"{stamp}\n{digest}\n")
    return digest


def folder_bytes(folder: Path) -> int:
    return sum(f.stat().st_size for f in folder.rglob("*") if f.is_file())


def save_adapter(model, folder: Path, meta: dict[str, Any]) -> int:
    """Write the PEFT folder and `ladder-adapter.json`; return the size on disk in bytes."""
    folder.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(str(folder))
    atomic_write_json(folder / META_FILE, {"format": FORMAT, **meta})
    return folder_bytes(folder)


def describe(
    task, *, rung: str, run_id: str, base: dict, prompt: dict, **facts: Any
) -> dict[str, Any]:
    """The content of `ladder-adapter.json` (fields in the module docstring); `facts` adds
    hyperparameters, fingerprint, data and training. Scores are filled in after evaluation."""
    import ladder

    choices = task.kind_impl.choices(task)
    return {
        "name": f"{task.name}-{rung}",
        "rung": rung,
        "run_id": run_id,
        "created_at": time.strftime("%Y-%m-%dT%H:%M:%S"),
        "ladder_version": ladder.__version__,
        "base_model": base,
        "task": {
            "name": task.name,
            "kind": task.kind,
            "config_hash": task.config_hash(),
            "labels": task.labels or None,
            "output_schema": task.schema,
        },
        "prompt": prompt,
        "answer": {
            "mode": "score" if choices else "generate",
            "choices": [" " + c for c in choices] if choices else None,
            "stop": ["\n"],
            "max_new_tokens": task.spec.eval.max_new_tokens,
        },
        **facts,
        "scores": {},
    }


def attach_saved(lm, folder: Path):
    """`lm` with the adapter saved in `folder`, ready for inference."""
    with quiet():
        model = _peft().PeftModel.from_pretrained(lm, str(folder))
    model.eval()
    return model


def read_meta(folder: str | Path) -> dict[str, Any]:
    folder = Path(folder)
    file = folder / META_FILE
    if not file.exists() or not (folder / "adapter_config.json").exists():
        raise ModelError(
            f"{folder} is not a Ladder adapter (it needs adapter_config.json and {META_FILE}).",
            fix="point at a folder written by `ladder train` or the lora/distill rungs.",
        )
    try:
        meta = json.loads(file.read_text())
    except ValueError as exc:
        raise ModelError(f"{META_FILE} is not valid JSON: {exc}.", where=file) from None
    if meta.get("format") != FORMAT:
        raise ModelError(f"unknown adapter format {meta.get('format')!r}.", where=file)
    return meta


def load_adapter(folder: str | Path, base_path: str | None = None):
    """(model with the adapter, tokenizer, metadata); refuses a base whose weights differ."""
    meta = read_meta(folder)
    base = base_path or meta["base_model"]["path"]
    expected = meta["base_model"]["sha256"]
    actual = base_checksum(base)
    if actual != expected:
        raise ModelError(
            f"the adapter in {folder} was trained on base weights {expected[:12]}, but {base} "
            f"holds {actual[:12]}.",
            fix="load it on the base model it was trained on.",
        )
    lm, tokenizer = load_base(base, meta["base_model"].get("quantize", "none"))
    return attach_saved(lm, Path(folder)), tokenizer, meta


def merge_into(model, tokenizer, out: Path) -> int:
    """Fold the adapter into the base weights and save a full model folder; its size in bytes.

    The caller re-evaluates the merged folder: merging changes rounding, never assume equal.
    """
    merged = model.merge_and_unload()
    out.mkdir(parents=True, exist_ok=True)
    merged.save_pretrained(str(out))
    tokenizer.save_pretrained(str(out))
    return folder_bytes(out)
