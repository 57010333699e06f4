"""The uploader's Prometheus instruments: what it served, and what this host's dfgets reported."""

from __future__ import annotations

import platform
import sys

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    disable_created_metrics,
    generate_latest,
)
from prometheus_client.platform_collector import PlatformCollector
from prometheus_client.process_collector import ProcessCollector

from dfget_client.stats import PIECE_RESULTS, RESULTS, SOURCES, ClientStats
from supernode.version import VERSION

# Imported only by `dfget server`: a download never pays for prometheus_client. Labels are
# fixed small sets (source, piece result, download result, back-source reason); no task id,
# URL or peer ever becomes a label.
NAMESPACE = "dragonfly"
SUBSYSTEM = "dfget"
CONTENT_TYPE = CONTENT_TYPE_LATEST
# As the supernode: the Go client library exposes no `_created` series.
disable_created_metrics()  # type: ignore[no-untyped-call]


class UploaderMetrics:
    """One registry per uploader (tests build many in one process)."""

    def __init__(self) -> None:
        r = self.registry = CollectorRegistry()
        ProcessCollector(registry=r)
        PlatformCollector(registry=r)

        def counter(name: str, doc: str, labels: tuple[str, ...] = ()) -> Counter:
            return Counter(name, doc, labels, namespace=NAMESPACE, subsystem=SUBSYSTEM, registry=r)

        self.build_info = Gauge(
            "build_info",
            "Build info of dfget and its uploader.",
            ("version", "revision", "os", "arch", "goversion"),
            namespace=NAMESPACE,
            subsystem=SUBSYSTEM,
            registry=r,
        )
        self.build_info.labels(
            VERSION, "", sys.platform, platform.machine(), f"python{platform.python_version()}"
        ).set(1)
        self.upload_bytes = counter(
            "peer_upload_bytes", "Content bytes of pieces this uploader served to other peers."
        )
        self.download_bytes = counter(
            "peer_download_bytes",
            "Content bytes the dfgets of this host downloaded, by source.",
            ("source",),
        )
        self.pieces = counter(
            "peer_pieces", "Pieces the dfgets of this host fetched, by check result.", ("result",)
        )
        self.backsource = counter(
            "peer_backsource",
            "Downloads of this host that needed the origin, by back-source reason.",
            ("reason",),
        )
        self.downloads = counter("peer_downloads", "Downloads of this host by result.", ("result",))
        # Every bounded label value exists from the start, so rate() and sums see zeros.
        self._sources = {s: self.download_bytes.labels(s) for s in SOURCES}
        self._pieces = {p: self.pieces.labels(p) for p in PIECE_RESULTS}
        self._results = {r_: self.downloads.labels(r_) for r_ in RESULTS}

    def uploaded(self, content_bytes: int) -> None:
        self.upload_bytes.inc(content_bytes)

    def record(self, stats: ClientStats) -> None:
        """One download reported by a local dfget."""
        for source, size in stats.source_bytes().items():
            self._sources[source].inc(size)
        self._pieces["verified"].inc(stats.pieces_verified)
        self._pieces["rejected"].inc(stats.pieces_rejected)
        if stats.backsource:
            self.backsource.labels(str(stats.reason)).inc()
        self._results[stats.result].inc()

    def render(self) -> bytes:
        return generate_latest(self.registry)
