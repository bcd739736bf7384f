"""Several LoRA adapters on one loaded base model, chosen per request, never reloading the base.

PEFT injects each adapter's low-rank layers into the base model's modules once
(`PeftModel.from_pretrained`, then `load_adapter(adapter_name=...)`); switching is
`set_adapter(name)`, and serving the plain base is `disable_adapter_layers()`. Both only flip
which small matrices are used, so one 1 GB base serves any number of ~MB adapters. Switching is
global state on the model, which is why every call goes through the gateway's single engine
worker (`worker.py`), batched per adapter.

An adapter is a standard PEFT folder (`adapter_config.json` + weights); Ladder's fine-tuning
rung adds `ladder-adapter.json` (name, base model, task) next to them.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ladder.errors import ModelError, require
from ladder.training.adapters import quiet

META_FILE = "ladder-adapter.json"


def adapter_meta(path: str | Path) -> dict[str, Any]:
    """`ladder-adapter.json` of an adapter folder, or {} when it has none."""
    f = Path(path) / META_FILE
    try:
        return json.loads(f.read_text()) if f.exists() else {}
    except (OSError, ValueError) as exc:
        raise ModelError(f"cannot read the adapter's metadata: {exc}.", where=f) from None


def check_adapter_folder(path: str | Path) -> Path:
    p = Path(path).expanduser()
    if not (p / "adapter_config.json").exists():
        raise ModelError(
            "not a PEFT adapter folder (no adapter_config.json).",
            where=p,
            fix="give the folder a LoRA run saved (it holds adapter_config.json and adapter_model.safetensors).",
        )
    return p


class AdapterSet:
    """The adapters loaded on one base engine (an `HFEngine`); one is active at a time."""

    def __init__(self, engine):
        self.engine = engine
        self.peft_model = None
        self.paths: dict[str, Path] = {}
        self.active: str | None = None
        self.switches = 0  # adapter changes so far (the base is never reloaded)

    def load(self, name: str, path: str | Path) -> None:
        peft = require("peft", "train", "Serving LoRA adapters")
        folder = check_adapter_folder(path)
        if name in self.paths:
            raise ModelError(
                f"two adapters are named {name!r}.", fix="give each --adapter a distinct NAME."
            )
        try:
            with quiet():  # no transformers deprecation warning on the server's console
                if self.peft_model is None:
                    # wraps the engine's model in place: the engine keeps calling its own `lm`
                    self.peft_model = peft.PeftModel.from_pretrained(
                        self.engine.lm, str(folder), adapter_name=name
                    )
                else:
                    self.peft_model.load_adapter(str(folder), adapter_name=name)
        except (ValueError, RuntimeError, OSError, KeyError) as exc:
            if self.peft_model is not None and name in self.peft_model.peft_config:
                self.peft_model.delete_adapter(name)
            raise ModelError(
                f"cannot load the LoRA adapter {name!r} on {self.engine.model}: {str(exc).splitlines()[0][:300]}.",
                where=folder,
                fix="serve it on the base model it was trained from (see its adapter_config.json `base_model_name_or_path`).",
            ) from None
        self.peft_model.eval()
        self.paths[name] = folder
        self.active = "?"  # unknown after loading: the next call sets it
        self.activate(None)

    def activate(self, name: str | None) -> None:
        """Make `name` the active adapter (None: the plain base model)."""
        if name == self.active or self.peft_model is None:
            return
        tuner = self.peft_model.base_model
        if name is None:
            tuner.disable_adapter_layers()
        else:
            tuner.enable_adapter_layers()
            self.peft_model.set_adapter(name, inference_mode=True)
        self.engine.reset_prefix_cache()  # cached keys/values were computed with other weights
        self.active = name
        self.switches += 1


class AdapterView:
    """An engine for one model name: the shared base with one adapter active (or none)."""

    supports_scoring = True

    def __init__(self, model: str, adapters: AdapterSet, adapter: str | None):
        self.model, self.adapters, self.adapter = model, adapters, adapter
        self.base = adapters.engine

    def generate(self, requests):
        self.adapters.activate(self.adapter)
        return self.base.generate(requests)

    def score(self, requests):
        self.adapters.activate(self.adapter)
        return self.base.score(requests)

    def count_tokens(self, text: str) -> int:
        return self.base.count_tokens(text)

    def __getattr__(self, name: str):  # tokenizer, encode, ... of the base engine
        return getattr(self.base, name)

    def info(self) -> dict[str, Any]:
        info = {**self.base.info(), "model": self.model, "base_model": self.base.model}
        if self.adapter:
            info["adapter"] = self.adapter
            info["adapter_path"] = str(self.adapters.paths[self.adapter])
        return info

    def identity(self) -> str:
        """What a cached answer depends on: the base, and the adapter's weights file version."""
        if not self.adapter:
            return self.base.model
        folder = self.adapters.paths[self.adapter]
        stamp = max((f.stat().st_mtime_ns for f in folder.iterdir() if f.is_file()), default=0)
        return f"{self.base.model}+{self.adapter}@{folder}:{stamp}"

    def close(self) -> None:
        pass  # the base engine is closed once, by its owner
