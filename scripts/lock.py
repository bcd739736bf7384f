"""The dependency lock: `constraints.txt` pins every package the tests passed with.

    python scripts/lock.py write    # refresh constraints.txt from this environment (`make lock`)
    python scripts/lock.py check    # exit 1 when the installed set differs (`make lock-check`)

Only what the project needs with every extra is locked (packages installed by hand and
required by nothing are left out); the project itself, pip/setuptools/wheel and local version
tags (torch's `+cpu`) too, so the file installs on a fresh machine from the package index.
"""

from __future__ import annotations

import re
import sys
from importlib import metadata
from pathlib import Path

LOCK = Path(__file__).resolve().parent.parent / "constraints.txt"
SKIP = {"ladder-llm", "pip", "setuptools", "wheel"}
HEADER = (
    "# The lock: every dependency version the tests passed with (`make lock` rewrites it,\n"
    "# `make lock-check` fails when the installed set differs). torch stays the CPU build.\n"
)


def canon(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def installed() -> dict[str, str]:
    dists = {canon(d.metadata["Name"]): d for d in metadata.distributions() if d.metadata["Name"]}
    need = needed(dists)
    return {
        name: d.version.split("+")[0]  # 2.13.0+cpu -> 2.13.0
        for name, d in dists.items()
        if name not in SKIP and name in need
    }


def needed(dists: dict) -> set[str]:
    """Every distribution the project requires (pyproject.toml), with all its extras."""
    import tomllib  # Python 3.11+: the lock is written and checked from the dev venv
    from packaging.requirements import Requirement

    project = tomllib.loads((LOCK.parent / "pyproject.toml").read_text())["project"]
    reqs = list(project["dependencies"])
    for extra in project["optional-dependencies"].values():
        reqs += extra
    todo = [(Requirement(r), "") for r in reqs]
    seen: set[tuple[str, str]] = set()
    need: set[str] = set()
    while todo:
        req, extra = todo.pop()
        name = canon(req.name)
        if req.marker is not None and not req.marker.evaluate({"extra": extra}):
            continue
        if name == "ladder-llm" or name not in dists:
            continue
        need.add(name)
        for e in ["", *req.extras]:
            if (name, e) not in seen:
                seen.add((name, e))
                todo += [(Requirement(r), e) for r in dists[name].requires or []]
    return need


def read_lock(path: Path = LOCK) -> dict[str, str]:
    pins: dict[str, str] = {}
    for n, line in enumerate(path.read_text().splitlines(), 1):
        line = line.split("#")[0].strip()
        if not line:
            continue
        m = re.fullmatch(r"([A-Za-z0-9][A-Za-z0-9._-]*)==([^\s;]+)", line)
        if not m:
            sys.exit(f"{path}:{n}: expected NAME==VERSION, got {line!r}")
        pins[canon(m[1])] = m[2]
    return pins


def write(path: Path = LOCK) -> int:
    pins = installed()
    path.write_text(HEADER + "".join(f"{k}=={v}\n" for k, v in sorted(pins.items())))
    print(f"wrote {len(pins)} pins to {path.name}")
    return 0


def diff(pins: dict[str, str], have: dict[str, str]) -> list[str]:
    out = [
        f"{k}: installed {have[k]}, locked {v}"
        for k, v in pins.items()
        if k in have and have[k] != v
    ]
    out += [f"{k}=={v}: installed but not in the lock" for k, v in have.items() if k not in pins]
    out += [f"{k}=={v}: locked but not installed" for k, v in pins.items() if k not in have]
    return sorted(out)


def check(path: Path = LOCK) -> int:
    problems = diff(read_lock(path), installed())
    if problems:
        print(f"{path.name} differs from the installed packages:", *problems, sep="\n  ")
        print(
            "Fix: `make install` to install the lock, or `make lock` to refresh it after an upgrade."
        )
        return 1
    print(f"{path.name}: all {len(read_lock(path))} pins match the installed packages")
    return 0


if __name__ == "__main__":
    cmd = sys.argv[1] if len(sys.argv) > 1 else ""
    if cmd not in ("write", "check"):
        sys.exit("usage: python scripts/lock.py write|check")
    sys.exit(write() if cmd == "write" else check())
