"""Named Prometheus instruments of the supernode, on a registry of its own per app (§12)."""

from __future__ import annotations

import platform
import sys
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, disable_created_metrics
from prometheus_client.platform_collector import PlatformCollector
from prometheus_client.process_collector import ProcessCollector

from supernode.version import VERSION

NAMESPACE = "dragonfly"
# The Go client library exposes no `_created` series; scrapers comparing the two expect none.
disable_created_metrics()
_SIZE_BUCKETS = tuple(100.0 * 10**k for k in range(8))


class SupernodeMetrics:
    """Every series of the original supernode, plus our additive ones, on one registry."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        r = self.registry
        ProcessCollector(registry=r)
        PlatformCollector(registry=r)

        def counter(name: str, doc: str, labels: tuple[str, ...] = ()) -> Counter:
            return Counter(
                name, doc, labels, namespace=NAMESPACE, subsystem="supernode", registry=r
            )

        def gauge(name: str, doc: str, labels: tuple[str, ...] = ()) -> Gauge:
            return Gauge(name, doc, labels, namespace=NAMESPACE, subsystem="supernode", registry=r)

        self.build_info = gauge(
            "build_info",
            "Build info of the supernode.",
            ("version", "revision", "os", "arch", "goversion"),
        )
        self.build_info.labels(
            VERSION, "", sys.platform, platform.machine(), f"python{platform.python_version()}"
        ).set(1)
        self.http_requests = counter(
            "http_requests", "Counter of HTTP requests.", ("code", "handler")
        )
        self.http_request_duration = Histogram(
            "http_request_duration_seconds",
            "Histogram of latencies for HTTP requests.",
            ("handler",),
            namespace=NAMESPACE,
            subsystem="supernode",
            registry=r,
            buckets=(0.01, 0.02, 0.04, 0.1, 0.2, 0.4, 1, 2, 4, 8, 20, 60, 120),
        )
        self.http_request_size = Histogram(
            "http_request_size_bytes",
            "Histogram of request size for HTTP requests.",
            ("handler",),
            namespace=NAMESPACE,
            subsystem="supernode",
            registry=r,
            buckets=_SIZE_BUCKETS,
        )
        self.http_response_size = Histogram(
            "http_response_size_bytes",
            "Histogram of response size for HTTP requests.",
            ("handler",),
            namespace=NAMESPACE,
            subsystem="supernode",
            registry=r,
            buckets=_SIZE_BUCKETS,
        )
        self.pieces_downloaded_size = counter(
            "pieces_downloaded_size_bytes",
            "Total bytes of pieces downloaded from the supernode.",
        )
        self.dfget_download_duration = Histogram(
            "download_duration_seconds",
            "Histogram of dfget download durations.",
            ("callsystem", "peer"),
            namespace=NAMESPACE,
            subsystem="dfget",
            registry=r,
            buckets=(1, 2, 5, 10, 30, 60, 120, 300, 600),
        )
        self.dfget_download_size = Counter(
            "download_size_bytes",
            "Total bytes downloaded by dfget.",
            ("callsystem", "peer"),
            namespace=NAMESPACE,
            subsystem="dfget",
            registry=r,
        )
        self.dfget_download_total = Counter(
            "download",
            "Total times of dfget downloads.",
            ("callsystem", "peer"),
            namespace=NAMESPACE,
            subsystem="dfget",
            registry=r,
        )
        self.dfget_download_failed = Counter(
            "download_failed",
            "Total failed dfget downloads.",
            ("callsystem", "peer", "reason"),
            namespace=NAMESPACE,
            subsystem="dfget",
            registry=r,
        )
        self.cdn_cache_hit = counter("cdn_cache_hit", "Total times of CDN cache hits.")
        self.cdn_download = counter("cdn_download", "Total times of CDN downloads from the origin.")
        self.cdn_download_size = counter(
            "cdn_download_size_bytes", "Total bytes the CDN downloaded from origins."
        )
        self.cdn_download_failed = counter(
            "cdn_download_failed", "Total failed CDN downloads from origins."
        )
        self.dfgettasks = gauge(
            "dfgettasks", "Current dfget tasks by status.", ("callsystem", "status")
        )
        self.dfgettasks_registered = counter(
            "dfgettasks_registered", "Total dfget tasks registered.", ("callsystem",)
        )
        self.dfgettasks_failed = counter(
            "dfgettasks_failed", "Total dfget tasks that failed.", ("callsystem",)
        )
        self.gc_tasks = counter("gc_tasks", "Total tasks garbage-collected.")
        self.gc_peers = counter("gc_peers", "Total peers garbage-collected.")
        self.gc_disks = counter("gc_disks", "Total task files garbage-collected from disk.")
        self.last_gc_disks_timestamp = gauge(
            "last_gc_disks_timestamp_seconds", "Time of the last disk GC."
        )
        self.peers = gauge("peers", "Current registered peers.", ("peer",))
        self.tasks = gauge("tasks", "Current tasks by CDN status.", ("cdnstatus",))
        self.tasks_registered = counter("tasks_registered", "Total task registrations.")
        self.cdn_trigger = counter("cdn_trigger", "Total CDN triggers.")
        self.cdn_trigger_failed = counter("cdn_trigger_failed", "Total failed CDN triggers.")
        self.schedule_duration = Histogram(
            "schedule_duration_milliseconds",
            "Duration of the scheduler per pull.",
            ("peer",),
            namespace=NAMESPACE,
            subsystem="supernode",
            registry=r,
            buckets=(0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64),
        )
        # Beyond the original: what P2P saved, and what the scheduler decided.
        self.origin_bytes = counter(
            "origin_bytes", "Bytes the CDN downloaded from origins (for the saved-traffic ratio)."
        )
        self.cdn_served_bytes = counter(
            "cdn_served_bytes", "Bytes of pieces peers reported getting from the supernode CDN."
        )
        self.p2p_bytes = counter(
            "p2p_bytes", "Bytes of pieces peers reported getting from other peers."
        )
        self.schedule_results = counter(
            "schedule_results", "Pull replies by result code.", ("code",)
        )
        self.pieces_in_flight = gauge("pieces_in_flight", "Pieces assigned and not yet reported.")
        self.gc_runs = counter("gc_runs", "GC runs by kind.", ("kind",))
        self.gc_reclaimed_bytes = counter("gc_reclaimed_bytes", "Bytes reclaimed by disk GC.")
        self._route_children: dict[str, tuple[Histogram, Histogram, Histogram]] = {}
        self._request_counters: dict[tuple[str, str], Counter] = {}
        self._children: dict[tuple[int, tuple[str, ...]], Any] = {}

    def child(self, metric: Any, *labels: str) -> Any:
        """`metric.labels(*labels)`, cached: the hot path calls this on every pull."""
        key = (id(metric), labels)
        found = self._children.get(key)
        if found is None:
            found = self._children[key] = metric.labels(*labels)
        return found

    def observe_request(
        self, route: str, status: int, seconds: float, request_size: int, response_size: int
    ) -> None:
        """One request; labelled children are cached (`labels()` takes a lock every call)."""
        children = self._route_children.get(route)
        if children is None:
            children = (
                self.http_request_duration.labels(route),
                self.http_request_size.labels(route),
                self.http_response_size.labels(route),
            )
            self._route_children[route] = children
        key = (str(status), route)
        counter = self._request_counters.get(key)
        if counter is None:
            counter = self._request_counters[key] = self.http_requests.labels(*key)
        counter.inc()
        children[0].observe(seconds)
        children[1].observe(request_size)
        children[2].observe(response_size)
