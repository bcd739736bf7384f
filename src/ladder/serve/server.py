"""Running the gateway: in the foreground (`ladder serve`), or in a thread (`ladder.serve`,
tests, benchmarks)."""

from __future__ import annotations

import socket
import threading
import time

from ladder.errors import require


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def uvicorn_config(app, host: str, port: int, *, access_log: bool = False):
    uvicorn = require("uvicorn", "serve", "The gateway")
    # headers (API keys) never reach uvicorn's access log: it prints the request line only
    return uvicorn.Config(
        app,
        host=host,
        port=port,
        log_level="warning",
        access_log=access_log,
        timeout_graceful_shutdown=10,
        lifespan="on",
    )


def run(app, host: str, port: int, *, access_log: bool = True) -> None:
    uvicorn = require("uvicorn", "serve", "The gateway")
    uvicorn.Server(uvicorn_config(app, host, port, access_log=access_log)).run()


class ServerThread:
    """A real uvicorn server on loopback in a background thread; `stop()` shuts it down cleanly."""

    def __init__(self, app, host: str = "127.0.0.1", port: int | None = None):
        uvicorn = require("uvicorn", "serve", "The gateway")
        self.host, self.port = host, port or free_port(host)
        self.server = uvicorn.Server(uvicorn_config(app, self.host, self.port))
        self.server.install_signal_handlers = lambda: None  # signals belong to the main thread
        self.thread = threading.Thread(target=self.server.run, name="ladder-gateway", daemon=True)

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}/v1"

    def start(self, timeout: float = 30.0) -> ServerThread:
        self.thread.start()
        deadline = time.monotonic() + timeout
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError(f"the gateway did not start on {self.host}:{self.port}")
            time.sleep(0.02)
        return self

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=30)

    def __enter__(self) -> ServerThread:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
