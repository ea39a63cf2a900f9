"""The service's Prometheus metrics, in a registry of its own per app (two apps in one process, as in the tests
or when mounted twice, do not collide in prometheus_client's global registry)."""
from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from srgan_fast.serve.scheduler import BatchRecord

LATENCY_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 25, 60, 120, 300)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64)


class ServeMetrics:
    content_type = CONTENT_TYPE_LATEST

    def __init__(self):
        self.registry = CollectorRegistry(auto_describe=True)
        self.requests = Counter("srgan_serve_requests", "Upscale requests answered, by HTTP status",
                                ["status"], registry=self.registry)
        self.latency = Histogram("srgan_serve_request_seconds", "Upscale request latency, body read to answer",
                                 buckets=LATENCY_BUCKETS, registry=self.registry)
        self.queue_pixels = Gauge("srgan_serve_queue_pixels", "Pixels of admitted work not yet answered",
                                  registry=self.registry)
        self.batch_tiles = Histogram("srgan_serve_batch_tiles", "Windows per backend call", ["lane"],
                                     buckets=BATCH_BUCKETS, registry=self.registry)
        self.batch_requests = Histogram("srgan_serve_batch_requests", "Requests sharing one backend call",
                                        ["lane"], buckets=BATCH_BUCKETS, registry=self.registry)
        self.engine_busy = Counter("srgan_serve_engine_busy_seconds", "Seconds the engines spent in backend calls",
                                   ["lane"], registry=self.registry)

    def record_batch(self, record: BatchRecord) -> None:
        self.batch_tiles.labels(record.lane).observe(record.tiles)
        self.batch_requests.labels(record.lane).observe(record.jobs)
        self.engine_busy.labels(record.lane).inc(record.seconds)

    def render(self) -> bytes:
        return generate_latest(self.registry)
