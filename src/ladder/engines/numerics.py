"""The number format each phase runs in: measured once per machine, chosen per phase.

CPUs differ: without bf16 units a bf16 matmul is several times slower than fp32 (measured
1.7-3.3x, and far worse on small shapes, on the AVX2 machine this was written on); with
AMX-BF16 it is several times faster (4.5x on a 2048² matmul). So Ladder measures instead of
guessing: `probe()` times the matmul shapes of the three phases in fp32 and in bf16,

- `score`: a prompt-sized matmul (256 tokens x 640 -> 2048), what label scoring runs;
- `generate`: a decode-sized one (8 rows), memory-bound, what each generated token runs;
- `train`: a linear layer forward + backward on 128 tokens, fp32 weights with the forward under
  bf16 autocast (fp32 master weights) against plain fp32,

each in three alternating rounds, the best round counting (other work on shared cores slows
some rounds), and caches the GFLOP/s under the cache folder, keyed by the CPU (model and
flags) and the torch version, so each machine measures once (`ladder models prepare` measures
again). A phase runs in bf16 only where bf16 is faster by `MARGIN`, and generation only
together with scoring (alone it would cast fp32 weights at every token); on CUDA, bf16
wherever the GPU supports it.
`--dtype float32|bfloat16` forces every phase. When `auto` picks bf16 for scoring or generation,
the climb checks on dev that the answers agree with fp32 (`ladder.rungs.numerics_check`).
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ladder.errors import LadderError

FP32, BF16 = "float32", "bfloat16"
DTYPES = (FP32, BF16)
CHOICES = ("auto", *DTYPES)  # what --dtype accepts
PHASES = ("score", "generate", "train")
INFERENCE = ("score", "generate")
MARGIN = 1.2  # bf16 must be at least this many times faster than fp32 to be chosen
SECONDS = 0.4  # timed per kernel and dtype (the whole probe: about 3-5 s)
# flags that decide bf16 speed on x86 and Arm; the cache key uses all flags, these are shown
BF16_FLAGS = ("amx_bf16", "amx_tile", "avx512_bf16", "avx512f", "avx2", "fma", "bf16", "sve")
FORMAT = "ladder-numerics/1"


def check_dtype(value: str | None, where: str = "--dtype") -> str:
    """`auto` for None; otherwise the value itself if Ladder knows it, else a clear error."""
    if value is None:
        return "auto"
    if value not in CHOICES:
        raise LadderError(
            f"{where} {value!r} is not a number format Ladder can run.",
            fix="use auto (measure this machine and choose per phase), float32 or bfloat16.",
        )
    return value


# ---------------------------------------------------------------- the machine


def _cpuinfo() -> tuple[str, list[str]]:
    """The CPU's model name and flags (x86 `flags`, Arm `Features`) from /proc/cpuinfo."""
    model: str = ""
    flags: list[str] = []
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, value = line.partition(":")
            key = key.strip()
            if key == "model name" and not model:
                model = value.strip()
            elif key in ("flags", "Features") and not flags:
                flags = value.split()
    except OSError:
        pass
    return model or platform.processor() or platform.machine(), sorted(flags)


def machine(device: str = "cpu") -> dict[str, Any]:
    """What the measurement depends on: the CPU (or GPU), its flags, torch, the threads."""
    import torch

    model, flags = _cpuinfo()
    info: dict[str, Any] = {
        "device": device,
        "cpu": model,
        "bf16_flags": [f for f in BF16_FLAGS if f in flags],
        "flags_sha": hashlib.sha256(" ".join(flags).encode()).hexdigest()[:16],
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
    }
    if device == "cuda":
        info["gpu"] = torch.cuda.get_device_name(0)
    return info


def cache_key(info: dict[str, Any]) -> str:
    parts = [info["device"], info["cpu"], info["flags_sha"], info["torch"], info.get("gpu", "")]
    return hashlib.sha256("|".join(map(str, parts)).encode()).hexdigest()[:16]


def cache_dir() -> Path:
    from ladder.engines.gguf import cache_root

    return cache_root() / "numerics"


# ---------------------------------------------------------------- measuring


def _rate(fn: Callable[[], Any], flops: float, seconds: float) -> float:
    """GFLOP/s of `fn` over about `seconds` (at least one timed call after a warm-up)."""
    fn()
    reps, t0 = 0, time.perf_counter()
    while True:
        fn()
        reps += 1
        dt = time.perf_counter() - t0
        if dt >= seconds:
            return flops * reps / dt / 1e9


def _matmul(rows: int, k: int, n: int, dtype: str) -> tuple[Callable[[], Any], float]:
    """A [rows, k] x [k, n] linear in `dtype` (inputs made in fp32, then cast) and its FLOPs."""
    import torch

    dt = getattr(torch, dtype)
    gen = torch.Generator().manual_seed(0)
    a = torch.randn(rows, k, generator=gen).to(dt)
    w = torch.randn(n, k, generator=gen).to(dt)

    def run():
        with torch.inference_mode():
            torch.nn.functional.linear(a, w)

    return run, 2.0 * rows * k * n


def _train_step(tokens: int, k: int, n: int, dtype: str) -> tuple[Callable[[], Any], float]:
    """A linear layer's forward + backward, fp32 weights, the forward in `dtype` (autocast)."""
    import torch

    gen = torch.Generator().manual_seed(0)
    lin = torch.nn.Linear(k, n, bias=False)
    x = torch.randn(tokens, k, generator=gen, requires_grad=True)

    def step():
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=dtype == BF16):
            y = lin(x)
        y.float().sum().backward()

    return step, 3 * 2.0 * tokens * k * n


def matmul_gflops(rows: int, k: int, n: int, dtype: str, seconds: float = SECONDS) -> float:
    """GFLOP/s of a [rows, k] x [k, n] matmul in `dtype`."""
    return _rate(*_matmul(rows, k, n, dtype), seconds)


def train_gflops(tokens: int, k: int, n: int, autocast: bool, seconds: float = SECONDS) -> float:
    """GFLOP/s of a linear layer's forward + backward; the forward in bf16 if `autocast`."""
    return _rate(*_train_step(tokens, k, n, BF16 if autocast else FP32), seconds)


KERNELS = {
    "score": (_matmul, (256, 640, 2048)),
    "generate": (_matmul, (8, 640, 2048)),
    "train": (_train_step, (128, 640, 2048)),
}
ROUNDS = 3  # fp32 and bf16 alternate; the best round counts (other work on the cores slows some)


def measure(device: str = "cpu", seconds: float = SECONDS) -> dict[str, dict[str, float]]:
    """GFLOP/s per phase and dtype on this CPU: {phase: {float32: x, bfloat16: y}}."""
    out: dict[str, dict[str, float]] = {}
    for phase, (make, shape) in KERNELS.items():
        kernels = {d: make(*shape, d) for d in DTYPES}
        best = dict.fromkeys(DTYPES, 0.0)
        for _ in range(ROUNDS):
            for d, (fn, flops) in kernels.items():
                best[d] = max(best[d], _rate(fn, flops, seconds / ROUNDS))
        out[phase] = {d: round(v, 2) for d, v in best.items()}
    return out


def probe(device: str = "cpu", *, refresh: bool = False) -> dict[str, Any]:
    """This machine's measured GFLOP/s per phase, from the cache unless absent or `refresh`.

    Returns {format, key, machine, gflops: {phase: {float32, bfloat16}}, seconds, measured_at,
    load (1-minute load average when measured: other work on the cores skews it), cached}.
    """
    info = machine(device)
    key = cache_key(info)
    path = cache_dir() / f"{key}.json"
    if not refresh:
        try:
            found = json.loads(path.read_text())
            if found.get("format") == FORMAT and found.get("key") == key:
                return {**found, "cached": True}
        except (OSError, ValueError):
            pass  # absent or unreadable: measure again
    t0 = time.perf_counter()
    gflops = measure(device)
    result = {
        "format": FORMAT,
        "key": key,
        "machine": info,
        "gflops": gflops,
        "seconds": round(time.perf_counter() - t0, 2),
        "measured_at": time.strftime("%Y-%m-%dT%H:%M:%S"),
        "load": round(os.getloadavg()[0], 2) if hasattr(os, "getloadavg") else None,
    }
    from ladder.fsutil import atomic_write_json

    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_json(path, result)
    return {**result, "cached": False}


# ---------------------------------------------------------------- choosing


@dataclass
class Numerics:
    """The dtype of each phase, why, and the evidence (probe figures, dev agreement)."""

    phases: dict[str, str]  # phase -> float32 | bfloat16
    source: str  # forced | task.yaml | probe | cuda | default
    reasons: dict[str, str] = field(default_factory=dict)
    probe: dict[str, Any] | None = None  # gflops and machine of the measurement
    agreement: dict[str, Any] = field(default_factory=dict)  # phase -> dev check figures
    # auto picked bf16 for these inference phases and their dev check has not run yet
    pending: tuple[str, ...] = ()
    # the pending phases whose check waits for their first use (a climb whose answers are all
    # scored may never generate): `Context._settle` checks the others before any answer
    deferred: tuple[str, ...] = ()

    def weights(self) -> str:
        """The dtype to hold the weights in: fp32 unless every inference phase runs in another."""
        held = {self.phases[p] for p in INFERENCE}
        return held.pop() if len(held) == 1 else FP32

    def fall_back(self, phase: str, why: str) -> None:
        self.phases[phase] = FP32
        self.reasons[phase] = why

    def describe(self) -> dict[str, Any]:
        return {
            "phases": dict(self.phases),
            "source": self.source,
            "reasons": dict(self.reasons),
            "probe": self.probe,
            "agreement": self.agreement,
            "deferred": list(self.deferred),
        }


def _ratio(gflops: dict[str, dict[str, float]], phase: str) -> float:
    r = gflops.get(phase) or {}
    return r.get(BF16, 0.0) / r[FP32] if r.get(FP32) else 0.0


def choose(device: str = "cpu", requested: str | None = "auto", measured=None) -> Numerics:
    """Per-phase dtypes for `device`: forced by `requested`, or measured (`probe()` by default)."""
    requested = check_dtype(requested)
    if requested != "auto":
        why = f"asked for {requested} (--dtype, or the model's `options.dtype`)"
        return Numerics(dict.fromkeys(PHASES, requested), "forced", dict.fromkeys(PHASES, why))
    if device == "cuda":
        import torch

        ok = torch.cuda.is_bf16_supported()
        why = "CUDA with bf16 support" if ok else "this GPU has no bf16 support"
        return Numerics(
            dict.fromkeys(PHASES, BF16 if ok else FP32), "cuda", dict.fromkeys(PHASES, why)
        )
    if device != "cpu":
        why = f"no measurement for device {device!r}: fp32"
        return Numerics(dict.fromkeys(PHASES, FP32), "default", dict.fromkeys(PHASES, why))
    found = measured if measured is not None else probe(device)
    gflops = found["gflops"]
    phases, reasons = {}, {}
    for phase in PHASES:
        ratio = _ratio(gflops, phase)
        fast = ratio >= MARGIN
        phases[phase] = BF16 if fast else FP32
        reasons[phase] = (
            f"bf16 {ratio:.2f}x fp32 on this CPU ({gflops[phase][BF16]:.1f} vs "
            f"{gflops[phase][FP32]:.1f} GFLOP/s): {'bf16' if fast else 'fp32'}"
            f"{'' if fast else f' (bf16 must be >= {MARGIN}x)'}"
        )
    summary = {
        "gflops": gflops,
        "machine": found.get("machine"),
        "measured_at": found.get("measured_at"),
        "load": found.get("load"),
        "cached": found.get("cached"),
    }
    if phases["generate"] == BF16 and phases["score"] != BF16:
        # the weights stay fp32 for scoring, so generation would run under autocast, which
        # casts every weight at every generated token: slower than either format alone
        phases["generate"] = FP32
        reasons["generate"] += "; but scoring stays fp32, and bf16 generation over fp32 "
        reasons["generate"] += "weights casts them at every token: fp32"
    pending = tuple(p for p in INFERENCE if phases[p] == BF16)
    return Numerics(phases, "probe", reasons, summary, pending=pending)
