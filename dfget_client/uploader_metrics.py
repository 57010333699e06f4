"""The uploader's Prometheus series: what it served, and what this host's dfgets reported.

The counts are plain integers; prometheus_client is imported on the first scrape only, so an
uploader that nobody scrapes starts without it (a dfget waits for its uploader to start).
Labels are fixed small sets (source, piece result, download result, back-source reason); no
task id, URL or peer ever becomes a label.
"""

from __future__ import annotations

import platform
import sys
from collections.abc import Iterator
from typing import Any

from dfget_client.stats import PIECE_RESULTS, RESULTS, SOURCES, ClientStats
from supernode.version import VERSION

PREFIX = "dragonfly_dfget_"


class UploaderMetrics:
    """One set of counts per uploader (tests build many in one process)."""

    def __init__(self) -> None:
        self.upload_bytes = 0
        # Every bounded label value exists from the start, so rate() and sums see zeros.
        self.download_bytes = dict.fromkeys(SOURCES, 0)
        self.pieces = dict.fromkeys(PIECE_RESULTS, 0)
        self.downloads = dict.fromkeys(RESULTS, 0)
        self.backsource: dict[str, int] = {}
        self._registry: Any = None

    def uploaded(self, content_bytes: int) -> None:
        self.upload_bytes += content_bytes

    def record(self, stats: ClientStats) -> None:
        """One download reported by a local dfget."""
        for source, size in stats.source_bytes().items():
            self.download_bytes[source] += size
        self.pieces["verified"] += stats.pieces_verified
        self.pieces["rejected"] += stats.pieces_rejected
        if stats.backsource:
            reason = str(stats.reason)
            self.backsource[reason] = self.backsource.get(reason, 0) + 1
        self.downloads[stats.result] += 1

    def render(self) -> tuple[bytes, str]:
        """→ (exposition body, its Content-Type)."""
        from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

        if self._registry is None:
            self._registry = _registry(self)
        return generate_latest(self._registry), CONTENT_TYPE_LATEST


def _registry(metrics: UploaderMetrics) -> Any:
    from prometheus_client import CollectorRegistry
    from prometheus_client.platform_collector import PlatformCollector
    from prometheus_client.process_collector import ProcessCollector

    registry = CollectorRegistry()
    ProcessCollector(registry=registry)
    PlatformCollector(registry=registry)
    registry.register(_Collector(metrics))
    return registry


class _Collector:
    """Reads the counts at each scrape (no `_created` series, as the Go library)."""

    def __init__(self, metrics: UploaderMetrics) -> None:
        self.metrics = metrics

    def collect(self) -> Iterator[Any]:
        from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

        def counter(name: str, doc: str, label: str | None, values: dict[str, int]) -> Any:
            family = CounterMetricFamily(PREFIX + name, doc, labels=(label,) if label else ())
            for key, value in values.items():
                family.add_metric((key,) if label else (), value)
            return family

        m = self.metrics
        info = GaugeMetricFamily(
            PREFIX + "build_info",
            "Build info of dfget and its uploader.",
            labels=("version", "revision", "os", "arch", "goversion"),
        )
        python = f"python{platform.python_version()}"
        info.add_metric((VERSION, "", sys.platform, platform.machine(), python), 1)
        yield info
        yield counter(
            "peer_upload_bytes",
            "Content bytes of pieces this uploader served to other peers.",
            None,
            {"": m.upload_bytes},
        )
        yield counter(
            "peer_download_bytes",
            "Content bytes the dfgets of this host downloaded, by source.",
            "source",
            m.download_bytes,
        )
        yield counter(
            "peer_pieces",
            "Pieces the dfgets of this host fetched, by check result.",
            "result",
            m.pieces,
        )
        yield counter(
            "peer_backsource",
            "Downloads of this host that needed the origin, by back-source reason.",
            "reason",
            m.backsource,
        )
        yield counter("peer_downloads", "Downloads of this host by result.", "result", m.downloads)
