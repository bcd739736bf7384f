"""Build time: the catalog of model names a gateway serves, and the gateway running on it.

`build_catalog` resolves everything once, before the first request: a run's task solutions,
adapters, routes and their calibration (`serve.runs`), or a bare model (`serve.catalog`), plus
the embeddings. Request time (`serve.gateway`, `serve.app`) only looks names up in the result.
"""

from __future__ import annotations

from ladder.progress import NullProgress, Progress
from ladder.serve.catalog import Catalog, ServeOptions, add_embeddings, from_model
from ladder.serve.runs import from_run
from ladder.serve.server import ServerThread


def build_catalog(opts: ServeOptions, progress: Progress | None = None) -> Catalog:
    """Every model name `opts` asks for, built and checked; nothing half-built is left open."""
    progress = progress or NullProgress()
    cat = Catalog(opts.limits)
    try:
        if opts.run:
            from_run(cat, opts, progress)
        else:
            from_model(cat, opts)
        add_embeddings(cat)
    except BaseException:
        cat.close()
        raise
    return cat


class Served(ServerThread):
    """`ladder.serve`: the gateway on a catalog, in a background thread; `stop()` also unloads
    the catalog's models and flushes the request log."""

    def __init__(self, catalog, db, host: str, port: int | None, *, auth: bool):
        from ladder.serve.app import create_app

        super().__init__(create_app(catalog, db, auth=auth), host, port)
        self.catalog = catalog

    def start(self, timeout: float = 30.0) -> Served:
        super().start(timeout)
        return self

    def __enter__(self) -> Served:
        return self if self.thread.is_alive() else self.start()

    def stop(self) -> None:
        try:
            super().stop()
        finally:
            self.catalog.close()
