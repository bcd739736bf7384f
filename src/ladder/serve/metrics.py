"""Prometheus metrics of one gateway (its own registry, so several can live in one process)."""

from __future__ import annotations

from collections import OrderedDict
from typing import Any

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120)  # s


class Metrics:
    def __init__(self, worker=None):
        from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

        r = self.registry = CollectorRegistry()
        self.requests = Counter(
            "ladder_requests",
            "Requests answered, by model, route and HTTP status",
            ["model", "route", "status"],
            registry=r,
        )
        self.latency = Histogram(
            "ladder_request_seconds",
            "Time to answer (whole response), by model",
            ["model"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.tokens = Counter(
            "ladder_tokens", "Tokens in and out, by model", ["model", "direction"], registry=r
        )
        self.cost = Counter(
            "ladder_cost_usd", "Estimated cost in US dollars, by model", ["model"], registry=r
        )
        self.cache_hits = Counter(
            "ladder_cache_hits", "Temperature-0 answers served from the response cache", registry=r
        )
        self.cache_misses = Counter(
            "ladder_cache_misses", "Temperature-0 requests the cache did not have", registry=r
        )
        self.fallbacks = Counter(
            "ladder_fallbacks",
            "Routed requests the large model could not answer (the small one did)",
            ["model"],
            registry=r,
        )
        self.large_calls = Counter(
            "ladder_route_large", "Routed requests sent to the large model", ["model"], registry=r
        )
        depth = Gauge("ladder_queue_depth", "Requests waiting for the local model", registry=r)
        busy = Gauge(
            "ladder_engine_busy_seconds", "Seconds the local model spent on batches", registry=r
        )
        if worker is not None:
            depth.set_function(worker.depth)
            busy.set_function(lambda: worker.busy_s)
            Gauge("ladder_engine_batches", "Batches the local model ran", registry=r).set_function(
                lambda: worker.batches
            )

    def render(self) -> tuple[bytes, str]:
        from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

        return generate_latest(self.registry), CONTENT_TYPE_LATEST


class ResponseCache:
    """Least-recently-used answers of deterministic (temperature 0) requests."""

    def __init__(self, entries: int):
        self.entries = entries
        self._items: OrderedDict[str, Any] = OrderedDict()

    @property
    def enabled(self) -> bool:
        return self.entries > 0

    def get(self, key: str) -> Any:
        value = self._items.get(key)
        if value is not None:
            self._items.move_to_end(key)
        return value

    def put(self, key: str, value: Any) -> None:
        self._items[key] = value
        self._items.move_to_end(key)
        while len(self._items) > self.entries:
            self._items.popitem(last=False)
