"""The agent's memory and CPU at 10 readings/s, beside a bare paho-mqtt publisher doing the same.

A real node process (kiosk kind, ``simulation.synthetic_rate = 10``, every other key at its
default, so the health agent reports every 60 s) runs against the real Mosquitto with the
receipt stand-in as its cloud. Beside it, ``bench/bare_publisher.py`` publishes one small JSON
reading per 100 ms at QoS 1 as its own process. Both run at the same time and are measured the
same way with psutil: after a warm-up, RSS sampled every ``SAMPLE_S`` over a fixed window (peak
and mean), and CPU as the process's user + system time over the window's wall time. Run alone
with ``python -m bench.bench_agent``.
"""

from __future__ import annotations

import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import psutil
from paho.mqtt.enums import CallbackAPIVersion

from bench.bare_publisher import TOPIC
from bench.common import Row
from bench.errors import BenchError
from bench.harness import Report, ignore, quiet_logs, service_dir, write_node_config
from edge.standin import ReceiptStandin
from tests.integration.nodes import NodeProcess, wait_for
from tests.services import MosquittoServer

RATE = 10.0
WARMUP_S = 5.0
WINDOW_S = 30.0
SAMPLE_S = 0.25
#: The target is in megabytes of 10**6 bytes, the stricter reading of "MB".
MB = 1_000_000
TARGET_RSS_MB = 60.0
NODE = "bench-agent"
REPO = Path(__file__).resolve().parents[1]


@dataclass(frozen=True, slots=True)
class Usage:
    """What one process used over the window."""

    peak_rss_mb: float
    mean_rss_mb: float
    cpu_percent: float


def measure(
    processes: dict[str, psutil.Process],
    *,
    window_s: float,
    check: Callable[[], None] = lambda: None,
) -> dict[str, Usage]:
    """Sample each process's RSS every ``SAMPLE_S`` for ``window_s``; CPU over the whole window.

    ``check`` runs at every sample and raises when something being measured went away.
    """
    pause = threading.Event()
    rss: dict[str, list[int]] = {name: [] for name in processes}
    cpu_before = {name: p.cpu_times() for name, p in processes.items()}
    start = time.perf_counter()
    while True:
        for name, p in processes.items():
            rss[name].append(p.memory_info().rss)
        check()
        if time.perf_counter() - start >= window_s:
            break
        pause.wait(SAMPLE_S)
    wall = time.perf_counter() - start
    usage: dict[str, Usage] = {}
    for name, p in processes.items():
        after, before = p.cpu_times(), cpu_before[name]
        cpu_s = (after.user - before.user) + (after.system - before.system)
        samples = rss[name]
        usage[name] = Usage(
            peak_rss_mb=max(samples) / MB,
            mean_rss_mb=sum(samples) / len(samples) / MB,
            cpu_percent=100.0 * cpu_s / wall,
        )
    return usage


class _Tally:
    """Counts the reference publisher's messages as the broker delivers them."""

    def __init__(self, broker: MosquittoServer) -> None:
        self.count = 0
        self._subscribed = threading.Event()
        self._client = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=f"bench-tally-{uuid.uuid4().hex[:8]}",
            protocol=mqtt.MQTTv5,
        )
        self._client.on_connect = lambda c, *_a: c.subscribe(TOPIC, qos=1)
        self._client.on_subscribe = lambda *_a: self._subscribed.set()
        self._client.on_message = self._on_message
        self._client.connect(broker.host, broker.port, keepalive=30)
        self._client.loop_start()
        if not self._subscribed.wait(10.0):
            self.close()
            raise BenchError(f"agent: no SUBACK from the broker on port {broker.port}")

    def _on_message(self, *_a: Any) -> None:
        self.count += 1

    def close(self) -> None:
        self._client.disconnect()
        self._client.loop_stop()


def run(
    *,
    warmup_s: float = WARMUP_S,
    window_s: float = WINDOW_S,
    report: Report = ignore,
) -> list[Row]:
    """Measure the node and the bare publisher side by side; return the rows."""
    with quiet_logs(), service_dir("bench-agent-") as tmp:
        broker = MosquittoServer(tmp / "mosquitto")
        report("starting Mosquitto")
        broker.start()
        try:
            with ReceiptStandin(broker.host, broker.port) as cloud:
                tally = _Tally(broker)
                try:
                    ours, reference, delivered = _side_by_side(
                        broker,
                        cloud,
                        tally,
                        tmp,
                        warmup_s=warmup_s,
                        window_s=window_s,
                        report=report,
                    )
                finally:
                    tally.close()
        finally:
            broker.stop()
    if min(delivered) == 0:
        raise BenchError(
            f"agent: nothing published during the window (node {delivered[0]}, "
            f"reference {delivered[1]} readings); the figures would be of an idle process"
        )
    label = f"bare paho QoS 1 publisher process, same {RATE:g} readings/s"
    return [
        Row(
            name=f"agent RSS (MB), peak at {RATE:g} readings/s",
            ours=ours.peak_rss_mb,
            unit="MB",
            reference=reference.peak_rss_mb,
            reference_label=label,
            higher_is_better=False,
            target=f"<= {TARGET_RSS_MB:g} MB",
        ),
        Row(
            name=f"agent RSS (MB), mean at {RATE:g} readings/s",
            ours=ours.mean_rss_mb,
            unit="MB",
            reference=reference.mean_rss_mb,
            reference_label=label,
            higher_is_better=False,
        ),
        Row(
            name=f"agent CPU (%) at {RATE:g} readings/s",
            ours=ours.cpu_percent,
            unit="%",
            reference=reference.cpu_percent,
            reference_label=label,
            higher_is_better=False,
        ),
    ]


def _side_by_side(
    broker: MosquittoServer,
    cloud: ReceiptStandin,
    tally: _Tally,
    tmp: Path,
    *,
    warmup_s: float,
    window_s: float,
    report: Report,
) -> tuple[Usage, Usage, tuple[int, int]]:
    config = write_node_config(tmp / "node", node=NODE, port=broker.port, synthetic_rate=RATE)
    node = NodeProcess(config)
    bare_log = (tmp / "bare_publisher.log").open("wb")
    bare: subprocess.Popen[bytes] | None = None
    try:
        report("starting the node and the bare publisher")
        node.start()
        bare = subprocess.Popen(
            [
                *(sys.executable, "-m", "bench.bare_publisher"),
                *("--host", broker.host, "--port", str(broker.port), "--rate", str(RATE)),
            ],
            cwd=REPO,
            stdout=bare_log,
            stderr=subprocess.STDOUT,
        )

        def check() -> None:
            node.assert_alive()
            if bare is not None and bare.poll() is not None:
                raise BenchError(
                    f"agent: the bare publisher exited with {bare.returncode}:\n"
                    + (tmp / "bare_publisher.log").read_text(errors="replace")[-2000:]
                )

        def both_publishing() -> bool:
            check()
            return cloud.readings > 0 and tally.count > 0

        wait_for("the node and the bare publisher publishing", both_publishing, 30)
        report(f"warming up for {warmup_s:g} s")
        pause = threading.Event()
        warm_until = time.monotonic() + warmup_s
        while (left := warm_until - time.monotonic()) > 0:
            check()
            pause.wait(min(left, SAMPLE_S))
        report(f"measuring for {window_s:g} s")
        node_before, bare_before = cloud.readings, tally.count
        assert node.proc is not None
        usage = measure(
            {"node": psutil.Process(node.proc.pid), "bare": psutil.Process(bare.pid)},
            window_s=window_s,
            check=check,
        )
        delivered = (cloud.readings - node_before, tally.count - bare_before)
    except AssertionError as exc:
        raise BenchError(f"agent: {exc}\n--- node log ---\n{node.log_tail()}") from None
    finally:
        if bare is not None:
            bare.terminate()
            try:
                bare.wait(10)
            except subprocess.TimeoutExpired:
                bare.kill()
                bare.wait()
        bare_log.close()
        if node.alive():
            node.terminate()
    return usage["node"], usage["bare"], delivered


def main() -> None:
    """Run the benchmark and print its rows."""
    from rich.console import Console

    from bench.__main__ import render

    Console().print(render(run()))


if __name__ == "__main__":
    main()
