"""Prometheus metrics of the server: requests, errors, latency, batch sizes, per model.

Each app gets its own registry (so several apps can live in one process, as in tests). With several worker
processes, prometheus-client's multiprocess mode (``PROMETHEUS_MULTIPROC_DIR``) sums the workers' values.
"""

from __future__ import annotations

import os

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)

UNKNOWN_MODEL = "_unknown"  # label for requests naming no served model (keeps label values bounded)
LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


def _size_buckets(max_batch: int) -> tuple[float, ...]:
    out, b = [], 1
    while b < max_batch:
        out.append(float(b))
        b *= 2
    return (*out, float(max_batch))


class Metrics:
    def __init__(self, max_batch: int) -> None:
        self.multiprocess = bool(os.environ.get("PROMETHEUS_MULTIPROC_DIR"))
        # In multiprocess mode values live in files, collected at scrape time; metrics are not registered.
        self.registry = CollectorRegistry()
        reg = None if self.multiprocess else self.registry
        sizes = _size_buckets(max_batch)
        self.requests = Counter(
            "ticketpack_predict_requests", "Predict requests answered, by model and HTTP status.",
            ["model", "status"], registry=reg,
        )
        self.errors = Counter(
            "ticketpack_predict_errors", "Predict requests answered with an error (4xx/5xx), by model and status.",
            ["model", "status"], registry=reg,
        )
        self.latency = Histogram(
            "ticketpack_predict_latency_seconds", "Time from request received to response sent, by model.",
            ["model"], buckets=LATENCY_BUCKETS, registry=reg,
        )
        self.batch_size = Histogram(
            "ticketpack_predict_batch_size", "Inputs per predict request, by model.", ["model"], buckets=sizes, registry=reg,
        )
        self.in_flight = Gauge(
            "ticketpack_predict_in_flight", "Predict requests being handled now.", registry=reg,
            multiprocess_mode="livesum",
        )

        # labelled children, looked up once: ``labels()`` takes a lock and builds a key on every call
        self._answered: dict[tuple[str, int], tuple] = {}
        self._sizes: dict[str, object] = {}

    def answered(self, model: str, status: int, seconds: float) -> None:
        """One predict request answered: its status counted (and as an error if >= 400), its latency observed."""
        children = self._answered.get((model, status))
        if children is None:
            children = (
                self.requests.labels(model, str(status)),
                self.errors.labels(model, str(status)) if status >= 400 else None,
                self.latency.labels(model),
            )
            self._answered[(model, status)] = children
        requests, errors, latency = children
        requests.inc()
        if errors is not None:
            errors.inc()
        latency.observe(seconds)

    def batch(self, model: str, size: int) -> None:
        """The number of inputs of one predict request."""
        child = self._sizes.get(model)
        if child is None:
            child = self._sizes[model] = self.batch_size.labels(model)
        child.observe(size)

    def render(self) -> tuple[bytes, str]:
        if self.multiprocess:
            from prometheus_client import multiprocess

            registry = CollectorRegistry()
            multiprocess.MultiProcessCollector(registry)
            return generate_latest(registry), CONTENT_TYPE_LATEST
        return generate_latest(self.registry), CONTENT_TYPE_LATEST
