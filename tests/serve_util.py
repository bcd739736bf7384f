"""Real gateways on loopback for tests: catalog + app + uvicorn in a thread, and a key."""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from conftest import write_classify_task

FAST_RUNGS = "rungs: {few-shot: {selection: [random, balanced], k: [3]}}\n"


@dataclass
class Gateway:
    url: str
    key: str | None
    catalog: Any
    db: Any
    server: Any
    app: Any
    clients: list = field(default_factory=list)

    @property
    def root(self) -> str:
        return self.url.removesuffix("/v1")

    def client(self, key: str | None = None, **kw):
        import openai

        c = openai.OpenAI(base_url=self.url, api_key=key or self.key or "none", max_retries=0, **kw)
        self.clients.append(c)  # closed when the gateway stops
        return c

    def stop(self) -> None:
        for c in self.clients:
            c.close()
        self.server.stop()

    @property
    def gw(self):
        return self.app.state.gateway


@dataclass
class Served:
    task_dir: Path
    run_id: str
    extra: dict = field(default_factory=dict)


def climb_fake(tmp_path: Path, extra_yaml: str = FAST_RUNGS, rungs=None, engine=None) -> Served:
    """The tiny classify task climbed on the fake engine: a run to serve, in seconds.

    `engine`: a function of the task folder returning the engine to climb with.
    """
    from ladder.climb import ClimbOptions, climb

    root = write_classify_task(tmp_path / "task", extra_yaml=extra_yaml)

    def hook(ctx):
        if engine is not None:
            ctx.set_engine("fake", engine(root))

    res = climb(root, ClimbOptions(model="fake", all_rungs=True, rungs=rungs), ctx_hook=hook)
    return Served(root, res.run_id)


@contextmanager
def gateway(
    opts=None, *, auth: bool = True, log: bool = True, db=None, public_metrics=False, **limits
):
    """Start a gateway; yields a `Gateway`. Options: a ServeOptions; limits: Limits fields."""
    from ladder.serve.app import create_app
    from ladder.serve.build import build_catalog
    from ladder.serve.catalog import Limits, ServeOptions
    from ladder.serve.logs import open_db
    from ladder.serve.server import ServerThread

    opts = opts or ServeOptions(model="fake")
    opts.limits = Limits(**{"key_cache_s": 0.0, **limits})
    catalog = build_catalog(opts)
    db = db if db is not None else (open_db(runs_dir=opts.runs_dir) if log or auth else None)
    key = db.create_key("test")[1] if auth else None
    app = create_app(catalog, db if log or auth else None, auth=auth, public_metrics=public_metrics)
    server = ServerThread(app).start()
    g = Gateway(server.url, key, catalog, db, server, app)
    try:
        yield g
    finally:
        g.stop()
        catalog.close()


def oracle_responder(task_dir: Path, labels=None):
    """A generator that answers each task prompt with the gold label of its input."""
    from ladder.dataset import load_dataset
    from ladder.task import load_task

    gold = {e.input: e.output for e in load_dataset(load_task(task_dir)).examples}

    def respond(req) -> str:
        query = req.prompt.rsplit("Input:\n", 1)[-1]
        return " " + next((lab for text, lab in gold.items() if query.startswith(text)), "work")

    return respond
