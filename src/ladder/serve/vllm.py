"""`ladder serve --engine vllm`: the run's base model and every adapter on a vLLM server.

The gateway keeps what is Ladder's (prompt templates, routing, the request log, keys, the answer
cache); vLLM runs the model. Two ways to get the server:

- `--vllm-url URL`: a vLLM OpenAI server already running. At startup its `/v1/models` must list
  the run's base model (by served name, or by the folder it was started with) and every adapter
  (by the folder it was loaded from, or by name); an adapter it lacks is registered through
  `/v1/load_lora_adapter`, which vLLM offers only when it was started with
  `VLLM_ALLOW_RUNTIME_LORA_UPDATING=True` - otherwise serving refuses, naming the
  `--lora-modules NAME=PATH` flags to start it with. The adapter folders must be readable by
  the server (the same machine, or a shared filesystem).
- no URL: Ladder starts `python -m vllm.entrypoints.openai.api_server` from the environment
  `make vllm-venv` builds (`~/.cache/ladder/venv-vllm-0.32.0`; or `.venv-vllm` in the checkout,
  `$LADDER_VLLM_PYTHON`, `--vllm-python PATH`) with `--enable-lora --lora-modules ...` for every
  adapter, waits until it answers `/health`, and stops it when serving ends.

Each served name then gets a `vllm` engine (`ladder.engines.vllm`): label scoring from prompt
log-probabilities, structured choice/JSON output, the adapter as the request's model.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ladder.errors import LadderError, ModelError
from ladder.progress import NullProgress, Progress

MODULE = "vllm.entrypoints.openai.api_server"
RANKS = (1, 8, 16, 32, 64, 128, 256, 320, 512)  # the --max-lora-rank values vLLM accepts
VENV = ".venv-vllm"
# where `make vllm-venv` builds it: one per machine, kept between checkouts (and CI runs)
VLLM_VERSION = "0.32.0"
SHARED_VENV = Path("~/.cache/ladder") / f"venv-vllm-{VLLM_VERSION}"
ENV_PYTHON = "LADDER_VLLM_PYTHON"  # an interpreter with vLLM, for `ladder serve` and the tests


@dataclass
class VLLMOptions:
    url: str | None = None  # a running server's OpenAI base URL (…/v1); None: start one
    python: str | None = None  # the interpreter with vLLM installed (default: find_python)
    port: int | None = None  # where a started server listens (default: a free port)
    max_model_len: int = 2048
    startup_timeout_s: float = 1200.0  # minutes on a busy CPU
    args: list[str] = field(default_factory=list)  # more `vllm serve` flags, passed as given


@dataclass
class Served:
    """What the vLLM server serves for this gateway: its URL and the names to ask for."""

    url: str
    base: str  # the base model's served name
    adapters: dict[str, str]  # Ladder's adapter name -> vLLM's served name
    max_model_len: int | None = None
    server: VLLMServer | None = None  # set when Ladder started the server
    lines: list[str] = field(default_factory=list)


# ---------------------------------------------------------------- the base model's folder


def base_folder(model: str, task=None) -> Path:
    """The local transformers folder of the run's base model: what vLLM loads."""
    from ladder.engines.resolve import resolve_model

    entry = resolve_model(model, task)
    if entry.spec.engine != "hf":
        raise ModelError(
            f"--engine vllm serves a local transformers model, and {model!r} runs on the "
            f"{entry.spec.engine!r} engine.",
            fix="serve this run without --engine vllm (its model is served where it runs).",
        )
    if entry.prepare is not None and not (entry.is_prepared and entry.is_prepared()):
        raise ModelError(
            f"the model {model!r} is not prepared yet.", fix="run `ladder models prepare` first."
        )
    folder = Path(entry.locate() if entry.locate else entry.spec.path or "").expanduser()
    if not (folder / "config.json").exists():
        raise ModelError(f"{folder} is not a transformers model folder (no config.json).")
    return folder.resolve()


def lora_rank(adapters: dict[str, Path]) -> int:
    """The smallest `--max-lora-rank` vLLM accepts that holds every adapter's rank."""
    ranks = []
    for name, path in adapters.items():
        try:
            ranks.append(int(json.loads((Path(path) / "adapter_config.json").read_text())["r"]))
        except (OSError, ValueError, KeyError, TypeError):
            raise ModelError(
                f"cannot read the rank `r` of the adapter {name!r}.",
                where=Path(path) / "adapter_config.json",
            ) from None
    top = max(ranks, default=1)
    for r in RANKS:
        if r >= top:
            return r
    raise ModelError(f"vLLM serves LoRA ranks up to {RANKS[-1]}; an adapter has rank {top}.")


def find_python(given: str | None) -> Path:
    """The interpreter that has vLLM: --vllm-python, else $LADDER_VLLM_PYTHON, else `.venv-vllm`
    here or in Ladder's checkout, else the one `make vllm-venv` builds in ~/.cache/ladder."""
    chosen = given or os.environ.get(ENV_PYTHON)
    if chosen:
        where = f"--vllm-python {given}" if given else f"${ENV_PYTHON}={chosen}"
        py = Path(chosen).expanduser()
        if not py.exists():
            raise LadderError(
                f"{where}: no such file.",
                fix="point it at the python of a virtual environment with vllm installed "
                "(`make vllm-venv` builds one).",
            )
        return py
    roots = [Path.cwd(), Path(__file__).resolve().parents[3]]
    places = [*(root / VENV for root in dict.fromkeys(roots)), SHARED_VENV.expanduser()]
    for venv in places:
        py = venv / "bin" / "python"
        if py.exists():
            return py
    raise LadderError(
        f"no vLLM environment: bin/python is missing in {', '.join(str(p) for p in places)}.",
        fix="build it with `make vllm-venv`, point --vllm-python (or $LADDER_VLLM_PYTHON) at a "
        "Python with vllm installed, or give --vllm-url of a running vLLM server.",
    )


def dtype_for_cpu_or_gpu() -> str:
    """The dtype Ladder's hf engine runs the model in, so both engines give the same answers."""
    try:
        import torch

        return "bfloat16" if torch.cuda.is_available() else "float32"
    except ImportError:
        return "float32"


# ---------------------------------------------------------------- a server Ladder starts


class VLLMServer:
    """`vllm serve` in a child process: the base model and every adapter, on loopback."""

    def __init__(
        self,
        python: Path,
        folder: Path,
        name: str,
        adapters: dict[str, Path],
        opts: VLLMOptions,
        log: Path,
    ):
        from ladder.serve.server import free_port

        self.port = opts.port or free_port()
        self.url = f"http://127.0.0.1:{self.port}/v1"
        self.log = log
        self.opts = opts
        self.cmd = [
            str(python), "-m", MODULE,
            "--model", str(folder), "--served-model-name", name,
            "--host", "127.0.0.1", "--port", str(self.port),
            "--dtype", dtype_for_cpu_or_gpu(), "--max-model-len", str(opts.max_model_len),
        ]  # fmt: skip
        if adapters:
            self.cmd += ["--enable-lora", "--max-lora-rank", str(lora_rank(adapters))]
            self.cmd += ["--max-loras", str(len(adapters))]
            self.cmd += ["--lora-modules", *(f"{n}={p}" for n, p in adapters.items())]
        self.cmd += list(opts.args)
        self.proc: subprocess.Popen | None = None

    def start(self, progress: Progress | None = None) -> VLLMServer:
        progress = progress or NullProgress()
        env = {**os.environ, "HF_HUB_OFFLINE": "1"}  # the model is a local folder
        env.setdefault(
            "VLLM_CPU_KVCACHE_SPACE", "2"
        )  # GiB of KV cache on CPU (vLLM's default is 4)
        self.log.parent.mkdir(parents=True, exist_ok=True)
        with self.log.open("w") as out:
            self.proc = subprocess.Popen(self.cmd, stdout=out, stderr=subprocess.STDOUT, env=env)
        try:
            with progress.task(f"starting vLLM on port {self.port} (log: {self.log})", total=None):
                self._wait_ready()
        except BaseException:
            self.stop()
            raise
        return self

    def _wait_ready(self) -> None:
        import httpx

        assert self.proc is not None, "start() launches the process before waiting for it"
        t0, health = time.monotonic(), self.url.removesuffix("/v1") + "/health"
        while time.monotonic() - t0 < self.opts.startup_timeout_s:
            if self.proc.poll() is not None:
                raise LadderError(
                    f"vLLM exited with status {self.proc.returncode} while starting:\n{self.tail()}",
                    fix=f"read its log {self.log}; the command was: {' '.join(self.cmd)}",
                )
            try:
                if httpx.get(health, timeout=5).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(2)
        raise LadderError(
            f"vLLM did not answer {health} within {self.opts.startup_timeout_s:g} s:\n{self.tail()}",
            fix=f"read its log {self.log}; on a busy CPU it can take minutes.",
        )

    def tail(self, chars: int = 2000) -> str:
        try:
            return self.log.read_text(errors="replace")[-chars:]
        except OSError:
            return ""

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.terminate()  # vLLM shuts its engine core down on SIGTERM
        try:
            self.proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=10)


# ---------------------------------------------------------------- a server already running


def attach(
    url: str,
    model: str,
    folder: Path,
    adapters: dict[str, Path],
    *,
    api_key: str | None = None,
) -> Served:
    """Check a running vLLM server serves the base model and every adapter; register the
    adapters it lacks through its runtime LoRA endpoint when it allows that, else refuse."""
    import httpx

    headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
    cards = _models(url, headers)
    bases = [c for c in cards if not c.get("parent")]
    base = next((c for c in bases if c["id"] == model), None) or next(
        (c for c in bases if _same(c.get("root"), folder)), None
    )
    if base is None:
        serves = ", ".join(f"{c['id']} ({c.get('root')})" for c in bases) or "no base model"
        raise LadderError(
            f"the vLLM server {url} serves {serves}, not the run's base model {model} ({folder}).",
            fix=f"start it with --model {folder} --served-model-name {model}.",
        )
    loras = [c for c in cards if c.get("parent")]
    served: dict[str, str] = {}
    missing: dict[str, Path] = {}
    for name, path in adapters.items():
        by_path = next((c["id"] for c in loras if _same(c.get("root"), path)), None)
        if by_path is not None:
            served[name] = by_path
        elif any(c["id"] == name for c in loras):
            other = next(c.get("root") for c in loras if c["id"] == name)
            raise LadderError(
                f"the vLLM server {url} serves another adapter as {name!r} ({other}), not {path}.",
                fix=f"restart it with --lora-modules {name}={path}, or unload its {name!r}.",
            )
        else:
            missing[name] = path
    lines = []
    with httpx.Client(timeout=120, headers=headers) as client:
        for name, path in missing.items():
            r = client.post(
                url + "/load_lora_adapter", json={"lora_name": name, "lora_path": str(path)}
            )
            if r.status_code in (404, 405):
                flags = " ".join(f"{n}={p}" for n, p in adapters.items())
                raise LadderError(
                    f"the vLLM server {url} does not serve the adapter {name!r} and does not allow "
                    "loading adapters at run time (its /v1/load_lora_adapter answers "
                    f"{r.status_code}).",
                    fix=f"start vLLM with --enable-lora --lora-modules {flags}, or with "
                    "VLLM_ALLOW_RUNTIME_LORA_UPDATING=True in its environment.",
                )
            if r.status_code != 200:
                raise LadderError(
                    f"the vLLM server {url} could not load the adapter {name!r} from {path}: "
                    f"HTTP {r.status_code} {_message(r)}.",
                    fix="check the folder is readable by the server and its rank fits "
                    "--max-lora-rank (and --max-loras the number of adapters).",
                )
            served[name] = name
            lines.append(f"{name}: loaded into vLLM at run time from {path}")
    return Served(url, base["id"], served, base.get("max_model_len"), lines=lines)


def _models(url: str, headers: dict[str, str]) -> list[dict[str, Any]]:
    import httpx

    try:
        r = httpx.get(url.rstrip("/") + "/models", headers=headers, timeout=10)
        r.raise_for_status()
        return list(r.json()["data"])
    except (httpx.HTTPError, ValueError, KeyError, TypeError) as exc:
        raise LadderError(
            f"cannot list the models of the vLLM server {url}: {str(exc)[:200]}.",
            fix="check --vllm-url points at vLLM's OpenAI server (it ends in /v1) and it is up.",
        ) from None


def _same(root: str | None, path: Path) -> bool:
    if not root:
        return False
    try:
        return Path(root).expanduser().resolve() == Path(path).expanduser().resolve()
    except OSError:
        return False


def _message(r) -> str:
    try:
        body = r.json()
        err = body.get("error") if isinstance(body, dict) else None
        msg = (err or {}).get("message") if isinstance(err, dict) else body.get("message")
        return str(msg or body)[:300]
    except ValueError:
        return r.text[:300]


# ---------------------------------------------------------------- engines for the gateway


def serve_on_vllm(
    model: str,
    adapters: dict[str, Path],
    opts: VLLMOptions,
    *,
    task=None,
    log: Path,
    progress: Progress | None = None,
) -> tuple[Served, dict[str, Any]]:
    """The server (started, or checked) and a `vllm` engine per served name: the base model's
    under `model`, each adapter's under its Ladder name."""
    from ladder.engines.vllm import VLLMEngine

    folder = base_folder(model, task)
    adapters = {n: Path(p).expanduser().resolve() for n, p in adapters.items()}
    if model in adapters:
        raise ModelError(f"an adapter is named {model!r}, like the base model it runs on.")
    server = None
    if opts.url:
        served = attach(opts.url.rstrip("/"), model, folder, adapters, api_key=_key())
    else:
        server = VLLMServer(find_python(opts.python), folder, model, adapters, opts, log)
        server.start(progress)
        try:
            served = attach(server.url, model, folder, adapters)
        except BaseException:
            server.stop()
            raise
        served.server = server
        served.lines.append(f"vLLM started by Ladder at {server.url} (log: {log})")
    try:
        tok = _tokenizer(folder)

        def make(name: str, remote: str) -> VLLMEngine:
            return VLLMEngine(
                name, base_url=served.url, remote_model=remote, tokenizer=tok, api_key=_key(),
                concurrency=32, timeout=600, max_retries=1, check=False,
            )  # fmt: skip

        engines = {model: make(model, served.base)}
        for name, remote in served.adapters.items():
            engines[name] = make(name, remote)
    except BaseException:
        if server is not None:
            server.stop()
        raise
    where = "started by Ladder" if server is not None else "at"
    served.lines.append(
        f"{model}: on vLLM {where} {served.url}"
        + (f" with adapters {', '.join(served.adapters)}" if served.adapters else "")
    )
    return served, engines


def _key() -> str | None:
    return os.environ.get("VLLM_API_KEY")


def _tokenizer(folder: Path):
    """The base model's tokenizer: exact token counts and its chat template in the gateway."""
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(folder))
