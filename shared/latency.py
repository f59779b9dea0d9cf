"""A cumulative latency histogram carried in a heartbeat hash (one JSON field), so a
service measures and the API exposes it to Prometheus without a second channel.

The gateway observes ``signal_to_ack_ms`` (an intent's ``created_at`` by the runner to
its report); the API sums the histograms of the live instances (:func:`merge`). The
counts are cumulative per process: a restart resets them, which Prometheus' ``rate()``
handles as a counter reset.
"""

from __future__ import annotations

import bisect
import json
from collections.abc import Iterable
from dataclasses import dataclass, field

# Upper bounds in milliseconds (the last bucket, +Inf, is implicit).
BOUNDS_MS: tuple[float, ...] = (1, 2.5, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000)
SIGNAL_TO_ACK_FIELD = "signal_to_ack_ms"


@dataclass(slots=True)
class LatencyHistogram:
    bounds: tuple[float, ...] = BOUNDS_MS
    counts: list[int] = field(default_factory=lambda: [0] * (len(BOUNDS_MS) + 1))
    total_ms: float = 0.0
    count: int = 0

    def observe(self, ms: float) -> None:
        self.counts[bisect.bisect_left(self.bounds, ms)] += 1
        self.total_ms += ms
        self.count += 1

    def to_json(self) -> str:
        """``{"le": [...], "counts": [...], "sum": ms, "count": n}``; ``counts`` are per
        bucket (not cumulative), the last one above every bound."""
        return json.dumps(
            {
                "le": list(self.bounds),
                "counts": self.counts,
                "sum": self.total_ms,
                "count": self.count,
            }
        )

    @classmethod
    def from_json(cls, raw: str) -> LatencyHistogram:
        """Inverse of :meth:`to_json`; raises ValueError on anything else."""
        data = json.loads(raw)
        bounds = tuple(float(b) for b in data["le"])
        counts = [int(c) for c in data["counts"]]
        if len(counts) != len(bounds) + 1 or list(bounds) != sorted(bounds):
            raise ValueError(f"{len(counts)} counts for {len(bounds)} bounds")
        return cls(bounds, counts, float(data["sum"]), int(data["count"]))


def merge(raws: Iterable[str]) -> LatencyHistogram | None:
    """The sum of the histograms in ``raws`` that share the first one's bounds (None when
    there is none); unreadable ones are skipped."""
    merged: LatencyHistogram | None = None
    for raw in raws:
        try:
            one = LatencyHistogram.from_json(raw)
        except (ValueError, KeyError, TypeError):
            continue
        if merged is None:
            merged = LatencyHistogram(one.bounds, list(one.counts), one.total_ms, one.count)
        elif one.bounds == merged.bounds:
            merged.counts = [a + b for a, b in zip(merged.counts, one.counts, strict=True)]
            merged.total_ms += one.total_ms
            merged.count += one.count
    return merged
