"""Provenance: everything needed to know where a result came from."""

from __future__ import annotations

import os
import platform
import subprocess
import sys
from importlib import metadata
from pathlib import Path
from typing import Any

PACKAGES = (
    "ladder-llm",
    "torch",
    "transformers",
    "peft",
    "numpy",
    "pydantic",
    "openai",
    "jsonschema",
    "llama_cpp_python",
    "sqlite-vec",
    "apsw",
    "bm25s",
    "pgvector",
    "psycopg",
)


def git_info(path: Path) -> dict[str, Any] | None:
    """Commit and dirty flag of the git checkout containing `path`, if any."""
    try:
        root = subprocess.run(
            ["git", "rev-parse", "--show-toplevel"],
            cwd=path,
            capture_output=True,
            text=True,
            timeout=5,
        )
        if root.returncode != 0:
            return None
        sha = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=path, capture_output=True, text=True, timeout=5
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=path,
            capture_output=True,
            text=True,
            timeout=10,
        ).stdout.strip()
        return {"sha": sha or None, "dirty": bool(dirty), "root": root.stdout.strip()}
    except (OSError, subprocess.SubprocessError):
        return None


def versions() -> dict[str, str]:
    out = {}
    for name in PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return out


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def hardware() -> dict[str, Any]:
    info: dict[str, Any] = {
        "machine": platform.machine(),
        "cpu": _cpu_model(),
        "cores": os.cpu_count(),
        "system": f"{platform.system()} {platform.release()}",
    }
    try:
        pages, size = os.sysconf("SC_PHYS_PAGES"), os.sysconf("SC_PAGE_SIZE")
        info["memory_gb"] = round(pages * size / 2**30, 1)
    except (ValueError, OSError, AttributeError):
        pass
    try:
        import torch

        info["torch_threads"] = torch.get_num_threads()
        if torch.cuda.is_available():
            info["gpu"] = torch.cuda.get_device_name(0)
            info["gpu_memory_gb"] = round(
                torch.cuda.get_device_properties(0).total_memory / 2**30, 1
            )
    except ImportError:
        pass
    return info


def collect(seed: int, task_dir: Path | None = None) -> dict[str, Any]:
    import ladder

    return {
        "ladder_version": ladder.__version__,
        "ladder_git": git_info(Path(ladder.__file__).parent),
        "task_git": git_info(task_dir) if task_dir else None,
        "python": sys.version.split()[0],
        "packages": versions(),
        "hardware": hardware(),
        "seed": seed,
        "argv": sys.argv[1:],
    }
