"""`POST /task/metrics`: a dfget's report of one download, counted once (§3.6, §12)."""

from __future__ import annotations

from collections import OrderedDict
from typing import Any

from supernode.metrics import SupernodeMetrics

DEDUP_SIZE = 10_000  # downloads remembered to drop a repeated post of the same report


class DownloadReports:
    def __init__(self, metrics: SupernodeMetrics) -> None:
        self.metrics = metrics
        self._seen: OrderedDict[tuple[str, str], None] = OrderedDict()

    def record(self, body: dict[str, Any]) -> bool:
        """Update the `dragonfly_dfget_*` series; False when this download was already counted."""
        key = (body["cid"], body["task_id"])
        if body["cid"] and key in self._seen:
            return False
        self._seen[key] = None
        while len(self._seen) > DEDUP_SIZE:
            self._seen.popitem(last=False)
        labels = (body["call_system"], body["ip"])
        metrics = self.metrics
        metrics.dfget_download_total.labels(*labels).inc()
        if body["success"]:
            metrics.dfget_download_duration.labels(*labels).observe(body["duration"])
            metrics.dfget_download_size.labels(*labels).inc(max(0, body["file_length"]))
        else:
            metrics.dfget_download_failed.labels(*labels, body["backsource_reason"]).inc()
        return True
