"""The node health agent: how the node itself is doing, every ``health.interval_s``.

Staff read these to tell a dead sensor from a dead node: temperature, free disk, load, uptime,
memory, how much the outbox holds and how the MQTT link is doing.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import time
from datetime import datetime
from pathlib import Path

import structlog

from edge.agents.base import AgentContext, Emitter, wait_or_stop
from protocol.messages import FieldValue

log = structlog.get_logger(__name__)

THERMAL_ZONE = Path("/sys/class/thermal/thermal_zone0/temp")
PROC = Path("/proc")


def cpu_temp_c(path: Path | None = None) -> float | None:
    """The SoC temperature in °C from the kernel's thermal zone (millidegrees), if present."""
    try:
        return int((path or THERMAL_ZONE).read_text().strip()) / 1000.0
    except (OSError, ValueError):
        return None


def disk_free_bytes(path: Path) -> int | None:
    """Free bytes on the file system holding ``path`` (or its nearest existing parent)."""
    for candidate in (path, *path.parents):
        try:
            return shutil.disk_usage(candidate).free
        except OSError:
            continue
    return None


def system_uptime_s(proc: Path = PROC) -> float | None:
    """Seconds since the system booted, from ``/proc/uptime``."""
    try:
        return float((proc / "uptime").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None


def process_uptime_s(proc: Path = PROC) -> float | None:
    """Seconds since this process started (``/proc/self/stat`` start time against boot)."""
    boot = system_uptime_s(proc)
    try:
        stat = (proc / "self" / "stat").read_text()
        # The command name in parentheses may hold spaces; fields after it are fixed.
        start_ticks = int(stat.rsplit(")", 1)[1].split()[19])
        ticks_per_s = os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return None
    if boot is None:
        return None
    return max(0.0, boot - start_ticks / ticks_per_s)


def rss_bytes(proc: Path = PROC) -> int | None:
    """Resident memory of this process, from ``/proc/self/statm``."""
    try:
        pages = int((proc / "self" / "statm").read_text().split()[1])
    except (OSError, ValueError, IndexError):
        return None
    return pages * os.sysconf("SC_PAGE_SIZE")


class NodeHealthAgent:
    """Emits one ``node_health`` reading every ``health.interval_s``.

    >>> from datetime import UTC
    >>> from edge.config import NodeConfig
    >>> cfg = NodeConfig.model_validate({"node": {"id": "k-01", "kind": "kiosk",
    ...                                           "data_dir": "/tmp"}})
    >>> got = []
    >>> agent = NodeHealthAgent(AgentContext(
    ...     node="k-01", config=cfg, emit=lambda r, urgent=False: got.append(r)))
    >>> agent.sample()
    True
    >>> "disk_free_bytes" in got[0].fields
    True
    """

    name = "node_health"

    def __init__(self, ctx: AgentContext) -> None:
        self._ctx = ctx
        self._out = Emitter(ctx.node, ctx.emit, ctx.clock)
        self.sensors: tuple[str, ...] = ("node",)
        self.interval_s = ctx.config.health.interval_s
        self._started = time.monotonic()

    def fields(self, now: datetime) -> dict[str, FieldValue]:
        """The health fields as of ``now``; values the platform cannot give are left out."""
        out: dict[str, FieldValue] = {}
        temp = cpu_temp_c()
        if temp is not None:
            out["cpu_temp_c"] = temp
        free = disk_free_bytes(self._ctx.config.node.data_dir)
        if free is not None:
            out["disk_free_bytes"] = free
        with contextlib.suppress(OSError):  # not every platform has a load average
            out["load1"] = float(os.getloadavg()[0])
        process = process_uptime_s()
        out["uptime_s"] = (
            process if process is not None else float(time.monotonic() - self._started)
        )
        system = system_uptime_s()
        if system is not None:
            out["system_uptime_s"] = system
        rss = rss_bytes()
        if rss is not None:
            out["rss_bytes"] = rss
        out.update(self._outbox_fields(now))
        out.update(self._link_fields())
        return out

    def _outbox_fields(self, now: datetime) -> dict[str, FieldValue]:
        if self._ctx.outbox_stats is None:
            return {}
        try:
            stats = self._ctx.outbox_stats()
        except Exception as exc:  # a health report must survive a broken outbox
            log.warning("outbox_stats_failed", node=self._ctx.node, error=str(exc))
            return {}
        out: dict[str, FieldValue] = {
            "outbox_rows": stats.pending_rows,
            "outbox_readings": stats.pending_readings,
            "produced": stats.produced,
            "sent": stats.sent,
            "receipted": stats.receipted,
            "dropped": stats.dropped,
        }
        # Always present so the field keeps one type; 0 when nothing is pending.
        oldest = stats.oldest_pending_at
        out["oldest_pending_age_s"] = (
            max(0.0, now.timestamp() - oldest) if oldest is not None else 0.0
        )
        return out

    def _link_fields(self) -> dict[str, FieldValue]:
        try:
            stats = self._ctx.link_stats()
        except Exception as exc:  # a health report must survive a broken link
            log.warning("link_stats_failed", node=self._ctx.node, error=str(exc))
            return {}
        out: dict[str, FieldValue] = {}
        for key, value in stats.items():
            # bool is an int subclass; True/False stay booleans so the field type is stable.
            if isinstance(value, bool | int | float):
                out[f"link_{key}"] = value
        return out

    def sample(self) -> bool:
        """Take and emit one health reading now; False if the contract refused it."""
        now = self._ctx.clock()
        return self._out.emit("node_health", self.fields(now), at=now, sensor="node")

    async def run(self, stop: asyncio.Event) -> None:
        """Report every interval until ``stop`` is set; the first report goes out at once."""
        while not stop.is_set():
            now = self._ctx.clock()
            try:
                # /proc and the outbox's SQLite are quick, but never block the loop on a
                # slow SD card; the reading itself is emitted on the loop's thread.
                fields = await asyncio.to_thread(self.fields, now)
            except Exception as exc:  # the agent outlives whatever broke this report
                log.error("node_health_failed", node=self._ctx.node, error=str(exc))
            else:
                self._out.emit("node_health", fields, at=now, sensor="node")
            if await wait_or_stop(stop, self.interval_s):
                return

    def close(self) -> None:
        """Nothing to release; here for the agent contract."""
