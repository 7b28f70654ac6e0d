"""The collector beside Node-RED and a bare subscriber, in one run on one Mosquitto and ``influxd``.

Three consumers take the same load, one after another, from the same broker into the same store:

- **bare**: a paho-mqtt QoS 1 subscriber in its own process that only counts messages (the
  ceiling of the broker and of paho on this machine; it stores nothing);
- **Node-RED** 4 with node-red-contrib-influxdb, installed from npm into ``bench/nodered``
  (``npm ci`` runs when ``node_modules`` is missing): mqtt in (QoS 1) -> a function turning an
  envelope into points -> "influxdb batch" out (v1 API), see ``bench/nodered/flows.json``;
- **ours**: ``machikado cloud collect`` (InfluxDB v1 store, acking each message only after the
  batch holding it is written, then sending the node its receipt).

The load generator publishes valid data envelopes (1 or 10 readings each) at QoS 1 as fast as it
can from a few paho clients, round robin over the nodes of a bench fleet manifest. Throughput is
messages stored over the seconds from the first publish to the last point visible in influxd
(a count query, polled), or to the last message counted for the bare subscriber. Node-RED drops
a message whose write fails (influxd 1.6.7 answers some of its one-request-per-message writes
with 500 "engine: error syncing wal", and the influx client then refuses writes for a while
with "No host available"): its run ends when its count settles, its rate counts only what it
stored, and the messages it lost get their own row. Ours must store all: a stall fails the run.
Each consumer's own CPU time per 1,000 messages is reported too (influxd's is not).

Latency runs at 1,000 messages/s for about 10 s, each envelope made and stamped as it is sent.
Two measures: publish to the point being queryable in influxd (polled every 20 ms; the time is
when the poll's answer arrived, so it errs high by up to one poll), for ours and Node-RED alike;
and, for ours only, publish to the receipt arriving back at the publisher, which the collector
sends only after the durable write (Node-RED sends none). Run alone with
``python -m bench.bench_collector``.
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import json
import math
import os
import shutil
import signal
import statistics
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import IO, Any, Self

import paho.mqtt.client as mqtt
import psutil
from paho.mqtt.enums import MQTTErrorCode

from bench.clients import Counter, connect, disconnect
from bench.common import Row
from bench.errors import BenchError
from bench.harness import Report, ignore, quiet_logs, service_dir
from protocol import Reading, Receipt, Topics, encode_envelope, encode_readings
from protocol.errors import ProtocolError
from tests.services import InfluxServer, MosquittoServer, free_port

#: Messages per throughput run; at a few thousand a second each run takes seconds.
MESSAGES = 20_000
#: Readings per message in the two throughput runs.
SIZES = (1, 10)
#: The paced load of the latency run (messages/s) and how long it lasts.
LATENCY_RATE = 1_000.0
LATENCY_S = 10.0
#: The bench fleet: the nodes the load comes from, and one the readiness probes use.
NODES = ("bench-01", "bench-02", "bench-03", "bench-04")
PROBE_NODE = "bench-probe"
TRIAL = "bench"
SITE = "bench-site"
#: paho clients publishing the load, and the QoS 1 messages each keeps in flight.
PUBLISHERS = 2
PUBLISH_INFLIGHT = 100
#: One database per store-backed consumer, so neither counts the other's points.
NODERED_DB = "bench_nodered"
OURS_DB = "bench_collector"
#: How often a throughput run counts points in influxd; the latency run polls faster.
POLL_S = 0.1
LATENCY_POLL_S = 0.02
#: A throughput run watches the last TAIL_MESSAGES messages every TAIL_POLL_S (a query of a few
#: points, ~2 ms in influxd), and counts everything only every FULL_POLL_S until they are in: a
#: full count over 200,000 points costs influxd ~15 ms of CPU, which counting every 0.1 s
#: would take from the consumer under test. Once the tail is in, full counts run every
#: TAIL_POLL_S to find the end; for a consumer that may drop, once it is published to, every
#: POLL_S until its count settles.
TAIL_MESSAGES = 10
TAIL_POLL_S = 0.05
FULL_POLL_S = 0.5
#: A consumer that stores nothing new for this long has stalled: the run fails, naming it.
STALL_S = 30.0
#: Node-RED drops a message when its write fails; its run is over when its count has stood
#: still this long after the broker acknowledged every publish.
SETTLE_S = 5.0
#: The latency run's polls stop asking for a message unseen this long after its publish.
GIVE_UP_S = 5.0
#: Seconds a consumer may take to come up and store its first probe message.
START_TIMEOUT_S = 90.0

NODERED_DIR = Path(__file__).resolve().parent / "nodered"
NODERED_MAIN = NODERED_DIR / "node_modules" / "node-red" / "red.js"
NPM_CI = ("npm", "ci", "--no-audit", "--no-fund")
REPO = Path(__file__).resolve().parents[1]
#: ``machikado cloud collect``, run with this interpreter whether or not the entry point exists.
COLLECTOR_CODE = "from cloud.cli import app; app()"
TOPICS = Topics("machikado")


# -- the load -----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Load:
    """Data envelopes ready to publish, ``per_message`` readings of ``measurement`` in each.

    >>> load = make_load(8, per_message=10, measurement="bench_r10")
    >>> len(load.messages), load.readings
    (8, 80)
    """

    measurement: str
    per_message: int
    messages: list[tuple[str, bytes]]
    #: Reading ``n`` (numbered from 1) is stamped ``at0`` + ``n`` µs.
    at0: datetime = datetime(1970, 1, 1, tzinfo=UTC)

    @property
    def readings(self) -> int:
        return len(self.messages) * self.per_message

    def tail_ns(self, messages: int) -> int:
        """The time (ns) of the first reading of the last ``messages`` messages."""
        first = (len(self.messages) - messages) * self.per_message + 1
        return _epoch_ns(self.at0) + first * 1000


class Streams:
    """Each bench node's stream id and next seq, as a node's outbox would hand them out."""

    def __init__(self, nodes: Sequence[str] = NODES) -> None:
        self.nodes = tuple(nodes)
        self.ids = {node: uuid.uuid4().hex for node in self.nodes}
        self._seq = dict.fromkeys(self.nodes, 0)

    def next(self, index: int) -> tuple[str, str, int]:
        """The node, stream and seq of the ``index``-th message: nodes take turns."""
        node = self.nodes[index % len(self.nodes)]
        self._seq[node] += 1
        return node, self.ids[node], self._seq[node]


def _readings(measurement: str, first: int, count: int, at: datetime) -> bytes:
    # Readings numbered from ``first``, one microsecond apart: no two share a series and
    # timestamp, so the store keeps every one and the count query sees them all.
    return encode_readings(
        [
            Reading(
                m=measurement,
                at=at + timedelta(microseconds=n),
                sensor="synthetic",
                fields={"n": n, "value": math.sin(n / 10.0)},
            )
            for n in range(first, first + count)
        ]
    )


def make_load(
    messages: int, *, per_message: int, measurement: str, nodes: Sequence[str] = NODES
) -> Load:
    """``messages`` envelopes from ``nodes`` in turn, made before the clock starts."""
    at = datetime.now(UTC)
    streams = Streams(nodes)
    out: list[tuple[str, bytes]] = []
    for i in range(messages):
        node, stream, seq = streams.next(i)
        body = _readings(measurement, i * per_message + 1, per_message, at)
        payload = encode_envelope(node=node, stream=stream, seq=seq, sent_at=at, readings_json=body)
        out.append((TOPICS.data(node), payload))
    return Load(measurement=measurement, per_message=per_message, messages=out, at0=at)


def fleet_manifest(nodes: Sequence[str] = (*NODES, PROBE_NODE)) -> str:
    """The bench fleet manifest (TOML): one trial, one site, every bench node on it; no
    ``[budgets]``, so the collector checks every node against the contract's default budgets,
    as a deployment does."""
    lines = [
        "# The collector benchmark's fleet, written by bench/bench_collector.py.",
        f'[[trials]]\nid = "{TRIAL}"\nname = "Collector benchmark"\n',
        f'[[sites]]\nid = "{SITE}"\nname = "Benchmark bench"\ntrial = "{TRIAL}"\n',
    ]
    lines += [
        f'[[nodes]]\nid = "{n}"\nkind = "kiosk"\ntrial = "{TRIAL}"\nsite = "{SITE}"\n'
        for n in nodes
    ]
    return "\n".join(lines)


# -- MQTT clients -------------------------------------------------------------------------------


class Publishers:
    """A few paho clients that share the load; message ``i`` goes out through client ``i % n``.

    For example (it needs the real service, so it is not run as a doctest)::

        with Publishers(broker.host, broker.port) as pubs:
            pubs.publish(0, "machikado/v1/bench-01/data", payload)
    """

    def __init__(self, host: str, port: int, count: int = PUBLISHERS) -> None:
        self.acked = Counter()
        self.sent = 0
        self.clients: list[mqtt.Client] = []
        try:
            for i in range(count):
                client = connect(host, port, f"publisher{i}", inflight=PUBLISH_INFLIGHT)
                client.on_publish = self.acked.add
                self.clients.append(client)
        except BaseException:
            self.close()
            raise

    def all_acked(self) -> bool:
        """Whether the broker acknowledged every message published so far."""
        with self.acked.cond:
            return self.acked.count >= self.sent

    def publish(self, index: int, topic: str, payload: bytes) -> None:
        info = self.clients[index % len(self.clients)].publish(topic, payload, qos=1)
        if info.rc != MQTTErrorCode.MQTT_ERR_SUCCESS:
            raise BenchError(f"publish to {topic} not queued: {mqtt.error_string(info.rc)}")
        self.sent += 1

    def wait_acked(self, timeout: float) -> None:
        """Wait until the broker acknowledged every message published so far."""
        self.acked.wait_for(self.sent, timeout, "PUBACKs from the broker")

    def close(self) -> None:
        for client in self.clients:
            disconnect(client)
        self.clients = []

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()


def blast(publishers: Publishers, load: Load) -> float:
    """Publish the whole load as fast as paho takes it; return the clock at the first publish."""
    start = time.monotonic()
    for i, (topic, payload) in enumerate(load.messages):
        publishers.publish(i, topic, payload)
    return start


# -- counting in influxd ------------------------------------------------------------------------


def stored(influx: InfluxServer, db: str, measurement: str) -> int:
    """Points of ``measurement`` in ``db`` (counted on field ``n``, which every reading has)."""
    result = influx.query(f'SELECT count("n") FROM "{measurement}"', db=db)
    series = result["results"][0].get("series")
    return int(series[0]["values"][0][1]) if series else 0


class Progress:
    """Decides from successive counts when a run is over: all stored, settled short, or stalled.

    A consumer that may drop messages (Node-RED) is done when ``quiet()`` holds (nothing more is
    on its way) and its count has not moved for :data:`SETTLE_S`; its run then ends at the last
    change. Ours must store everything: no progress for :data:`STALL_S` fails the run.
    """

    def __init__(self, consumer: Consumer, expected: int, quiet: Callable[[], bool]) -> None:
        self.consumer, self.expected, self.quiet = consumer, expected, quiet
        self.count = -1
        self.changed_at = time.monotonic()
        #: The clock when the final count was first seen, once the run is over.
        self.end = 0.0

    def over(self, count: int, now: float) -> bool:
        if count >= self.expected:
            self.count, self.end = count, now
            return True
        if count != self.count:
            self.count, self.changed_at = count, now
            return False
        idle = now - self.changed_at
        if self.consumer.may_drop and idle > SETTLE_S and self.quiet():
            self.end = self.changed_at
            return True
        if idle > STALL_S:
            raise BenchError(
                f"{self.consumer.name} stalled at {count:,} of {self.expected:,} points in "
                f"influxd, none new for {STALL_S:g} s\n{self.consumer.log_tail()}"
            )
        return False


def wait_stored(influx: InfluxServer, db: str, load: Load, progress: Progress) -> None:
    """Count ``load``'s points until ``progress`` says the run is over (see TAIL_MESSAGES)."""
    pause = threading.Event()
    tail = min(TAIL_MESSAGES, len(load.messages))
    tail_ns, tail_points = load.tail_ns(tail), tail * load.per_message
    next_full = 0.0
    while True:
        progress.consumer.check()
        tail_in = stored_since(influx, db, load.measurement, tail_ns) >= tail_points
        if tail_in or time.monotonic() >= next_full:
            count = stored(influx, db, load.measurement)
            if progress.over(count, time.monotonic()):
                return
            if tail_in:
                wait = TAIL_POLL_S
            elif progress.consumer.may_drop and progress.quiet():
                wait = POLL_S  # settling: the end is the last change of the full count
            else:
                wait = FULL_POLL_S
            next_full = time.monotonic() + wait
        pause.wait(TAIL_POLL_S)


def stored_since(influx: InfluxServer, db: str, measurement: str, since_ns: int) -> int:
    """Points of ``measurement`` stamped at or after ``since_ns``."""
    q = f'SELECT count("n") FROM "{measurement}" WHERE time >= {since_ns}'
    series = influx.query(q, db=db)["results"][0].get("series")
    return int(series[0]["values"][0][1]) if series else 0


# -- the consumers ------------------------------------------------------------------------------


class Consumer:
    """A process under test that takes data envelopes from the broker; stopped on exit."""

    name = "consumer"
    #: Whether it may lose messages (then a run ends when its count settles, and the loss is
    #: reported) or must store every one (then a count that stands still is a failure).
    may_drop = False

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        directory.mkdir(parents=True, exist_ok=True)
        self.log_path = directory / f"{self.name}.log"
        self.proc: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None

    def _spawn(self, argv: Sequence[str], *, cwd: Path, env: dict[str, str]) -> None:
        self._log = self.log_path.open("ab")
        self.proc = subprocess.Popen(
            list(argv), cwd=cwd, env=env, stdout=self._log, stderr=subprocess.STDOUT
        )

    def cpu_seconds(self) -> float:
        """User + system CPU time the process and its children (our checking process) have
        used so far."""
        self.check()
        assert self.proc is not None
        proc = psutil.Process(self.proc.pid)
        times = proc.cpu_times()
        total = times.user + times.system + times.children_user + times.children_system
        for child in proc.children(recursive=True):
            with contextlib.suppress(psutil.NoSuchProcess):
                child_times = child.cpu_times()
                total += child_times.user + child_times.system
        return float(total)

    def check(self) -> None:
        """Raise :class:`BenchError` with the log tail when the process has exited."""
        if self.proc is None or self.proc.poll() is not None:
            code = None if self.proc is None else self.proc.returncode
            raise BenchError(f"{self.name} exited (code {code})\n{self.log_tail()}")

    def log_tail(self, n: int = 30) -> str:
        try:
            lines = self.log_path.read_text(encoding="utf-8", errors="replace").splitlines()
        except FileNotFoundError:
            return ""
        return f"--- {self.name} log ---\n" + "\n".join(lines[-n:])

    def stop(self, timeout: float = 30.0) -> None:
        """SIGTERM, then SIGKILL if it has not exited within ``timeout``."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self._log is not None:
            self._log.close()
            self._log = None

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.stop()


def ensure_nodered(report: Report = ignore) -> None:
    """Install Node-RED into ``bench/nodered`` with ``npm ci`` unless it is there already."""
    if NODERED_MAIN.is_file():
        return
    command = " ".join(NPM_CI)
    if shutil.which("npm") is None:
        raise BenchError(
            f"Node-RED is not installed in {NODERED_DIR} and npm is not on PATH: install Node.js "
            f"and npm (sudo apt-get install nodejs npm), then run `{command}` in {NODERED_DIR}"
        )
    report(f"installing Node-RED ({command})")
    done = subprocess.run(
        NPM_CI, cwd=NODERED_DIR, capture_output=True, text=True, timeout=600, check=False
    )
    if done.returncode != 0 or not NODERED_MAIN.is_file():
        raise BenchError(
            f"`{command}` in {NODERED_DIR} failed with code {done.returncode}:\n"
            f"{(done.stderr or done.stdout).strip()[-2000:]}"
        )


class NodeRed(Consumer):
    """Node-RED 4 running ``bench/nodered/flows.json`` headless, against one broker and store.

    For example (it needs the real service, so it is not run as a doctest)::

        with NodeRed(tmp, broker=broker, influx=influx).start() as red:
            red.wait_ready(publishers)
    """

    name = "nodered"
    may_drop = True

    def __init__(self, directory: Path, *, broker: MosquittoServer, influx: InfluxServer) -> None:
        super().__init__(directory)
        self.broker, self.influx = broker, influx
        self.http_port = free_port("127.0.0.1")

    def start(self) -> Self:
        node = shutil.which("node")
        if node is None:
            raise BenchError("node (Node.js) is not on PATH: sudo apt-get install nodejs npm")
        user_dir = self.directory / "userdir"
        user_dir.mkdir(exist_ok=True)
        shutil.copyfile(NODERED_DIR / "flows.json", user_dir / "flows.json")
        fleet = {n: {"trial": TRIAL, "site": SITE} for n in (*NODES, PROBE_NODE)}
        env = {
            **os.environ,
            "MACHIKADO_NODERED_PORT": str(self.http_port),
            "MACHIKADO_MQTT_PORT": str(self.broker.port),
            "MACHIKADO_INFLUX_PORT": str(self.influx.port),
            "MACHIKADO_INFLUX_DB": NODERED_DB,
            "MACHIKADO_BENCH_FLEET": json.dumps(fleet),
        }
        settings = NODERED_DIR / "settings.js"
        argv = [node, str(NODERED_MAIN), "--settings", str(settings), "--userDir", str(user_dir)]
        # Node-RED looks for the flow file in its working dir first: run it in the copy's dir,
        # so nothing it writes lands in the repository.
        self._spawn(argv, cwd=user_dir, env=env)
        return self

    def errors(self, top: int = 2) -> str:
        """The errors Node-RED logged, most frequent first, each with how often: "" if none."""
        try:
            text = self.log_path.read_text(encoding="utf-8", errors="replace")
        except FileNotFoundError:
            return ""
        found = collections.Counter(
            line.split("] ", 2)[-1] for line in text.splitlines() if " - [error] " in line
        )
        return "; ".join(f"{n:,}x {what}" for what, n in found.most_common(top))

    def _admin_answers(self) -> bool:
        try:
            url = f"http://127.0.0.1:{self.http_port}/flows"
            with urllib.request.urlopen(url, timeout=2.0) as resp:
                status: int = resp.status
                return status == 200
        except (urllib.error.URLError, OSError):
            return False

    def wait_ready(self, publishers: Publishers) -> None:
        """Wait for the admin API, then until a probe message is a point in influxd."""
        deadline = time.monotonic() + START_TIMEOUT_S
        pause = threading.Event()
        while not self._admin_answers():
            self.check()
            if time.monotonic() > deadline:
                raise BenchError(f"Node-RED's admin API never answered\n{self.log_tail()}")
            pause.wait(0.2)
        probe_until_stored(
            self, publishers, lambda: stored(self.influx, NODERED_DB, "probe") > 0, deadline
        )


class Collector(Consumer):
    """Our collector, ``machikado cloud collect``, storing into influxd over the v1 API."""

    name = "collector"

    def __init__(self, directory: Path, *, broker: MosquittoServer, influx: InfluxServer) -> None:
        super().__init__(directory)
        self.broker, self.influx = broker, influx
        self.config_path = directory / "collector.toml"

    def start(self) -> Self:
        manifest = self.directory / "fleet.toml"
        manifest.write_text(fleet_manifest(), encoding="utf-8")
        self.config_path.write_text(
            f"""# The collector benchmark's collector, written by bench/bench_collector.py.
[mqtt]
host = "{self.broker.host}"
port = {self.broker.port}
client_id = "bench-collector-{uuid.uuid4().hex[:8]}"

[store]
kind = "influx_v1"
url = "{self.influx.url}"
database = "{OURS_DB}"

[deadletter]
path = "{self.directory / "deadletter.sqlite"}"

[fleet]
manifest = "{manifest}"
""",
            encoding="utf-8",
        )
        # Our own config only: MACHIKADO_* variables of the caller's shell would override it.
        env = {k: v for k, v in os.environ.items() if not k.startswith("MACHIKADO_")}
        argv = [
            sys.executable,
            "-c",
            COLLECTOR_CODE,
            "collect",
            "--config",
            str(self.config_path),
        ]
        self._spawn(argv, cwd=REPO, env=env)
        return self

    def wait_ready(self, publishers: Publishers, receipts: Receipts) -> None:
        """Wait until a probe message comes back receipted: subscribed, storing, answering."""
        deadline = time.monotonic() + START_TIMEOUT_S
        probe_until_stored(self, publishers, lambda: receipts.seen(PROBE_NODE), deadline)


def probe_until_stored(
    consumer: Consumer, publishers: Publishers, done: Callable[[], bool], deadline: float
) -> None:
    """Publish a probe envelope each second until ``done()``: the consumer is up end to end.

    Repeated because a probe sent before the consumer subscribed reaches nobody.
    """
    streams = Streams((PROBE_NODE,))
    pause = threading.Event()
    next_probe = 0.0
    i = 0
    while not done():
        consumer.check()
        now = time.monotonic()
        if now > deadline:
            raise BenchError(f"{consumer.name} never stored a probe message\n{consumer.log_tail()}")
        if now >= next_probe:
            node, stream, seq = streams.next(i)
            at = datetime.now(UTC)
            payload = encode_envelope(
                node=node,
                stream=stream,
                seq=seq,
                sent_at=at,
                readings_json=_readings("probe", i + 1, 1, at),
            )
            publishers.publish(i, TOPICS.data(node), payload)
            i += 1
            next_probe = now + 1.0
        pause.wait(0.05)


class Receipts:
    """Listens to every node's receipt topic and times each seq's first receipt.

    ``expect(stream, seq, t)`` registers a message published at clock ``t``.
    """

    def __init__(self, host: str, port: int) -> None:
        self.latencies: list[float] = []
        self._sent: dict[tuple[str, int], float] = {}
        self._nodes: set[str] = set()
        self._lock = threading.Lock()
        self.client = connect(host, port, "receipts")
        subscribed = Counter()
        self.client.on_subscribe = subscribed.add
        self.client.on_message = self._on_message
        self.client.subscribe(TOPICS.every("receipt"), qos=1)
        subscribed.wait_for(1, 10.0, "receipt listener subscribed")

    def expect(self, stream: str, seq: int, at: float) -> None:
        with self._lock:
            self._sent[(stream, seq)] = at

    def seen(self, node: str) -> bool:
        """Whether any receipt came on ``node``'s receipt topic."""
        with self._lock:
            return node in self._nodes

    @property
    def outstanding(self) -> int:
        with self._lock:
            return len(self._sent)

    def _on_message(self, _c: Any, _u: Any, msg: mqtt.MQTTMessage) -> None:
        now = time.monotonic()
        try:
            node = TOPICS.parse(msg.topic).node
            receipt = Receipt.model_validate_json(msg.payload)
        except (ProtocolError, ValueError):
            return  # not a receipt of the contract: nothing to time
        with self._lock:
            self._nodes.add(node)
            for lo, hi in receipt.ranges:
                for seq in range(lo, hi + 1):
                    sent = self._sent.pop((receipt.stream, seq), None)
                    if sent is not None:
                        self.latencies.append(now - sent)

    def close(self) -> None:
        disconnect(self.client)


def bare_throughput(broker: MosquittoServer, publishers: Publishers, load: Load) -> float:
    """Messages/s a subscriber process that only counts receives: the ceiling."""
    timeout = _run_timeout(len(load.messages))
    argv = [
        sys.executable,
        "-m",
        "bench.bench_collector",
        "bare-subscriber",
        "--port",
        str(broker.port),
        "--count",
        str(len(load.messages)),
        "--timeout",
        str(timeout),
    ]
    with subprocess.Popen(
        argv, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    ) as proc:
        assert proc.stdout is not None
        line = proc.stdout.readline().strip()
        if line != "ready":
            proc.kill()
            _out, err = proc.communicate()
            raise BenchError(f"bare subscriber did not subscribe: {line} {err.strip()}")
        start = blast(publishers, load)
        try:
            out, err = proc.communicate(timeout=timeout + 10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.communicate()
            raise BenchError(f"bare subscriber never finished within {timeout:g} s") from None
    if proc.returncode != 0 or not out.startswith("done "):
        raise BenchError(f"bare subscriber failed (code {proc.returncode}): {out} {err}".strip())
    return len(load.messages) / (float(out.split()[1]) - start)


@dataclass(frozen=True, slots=True)
class Throughput:
    """One consumer's throughput run: messages/s stored, CPU per 1,000 messages, messages lost."""

    rate: float
    cpu: float
    lost: int


def stored_throughput(
    consumer: Consumer, influx: InfluxServer, db: str, publishers: Publishers, load: Load
) -> Throughput:
    """Messages stored per second from the first publish until the last point is queryable."""
    cpu = consumer.cpu_seconds()
    start = blast(publishers, load)
    progress = Progress(consumer, load.readings, publishers.all_acked)
    wait_stored(influx, db, load, progress)
    cpu = consumer.cpu_seconds() - cpu
    # A message's points go in one write, so they are stored or lost together.
    kept = progress.count // load.per_message
    if kept == 0:
        raise BenchError(f"{consumer.name} stored nothing\n{consumer.log_tail()}")
    messages = len(load.messages)
    return Throughput(kept / (progress.end - start), cpu * 1000 / messages, messages - kept)


# -- latency ------------------------------------------------------------------------------------


@dataclass
class LatencyRun:
    """A paced run: when each message was published, and when a poll of influxd first saw it.

    Message ``i`` carries one reading numbered ``n = i + 1`` and stamped ``at0 + n`` µs, so a
    poll asks only for the points from the oldest message not seen yet on, which stays a short
    answer; a message unseen for :data:`GIVE_UP_S` is left behind (the final count decides
    whether it was lost or only late).
    """

    measurement: str
    at0: datetime
    published: list[float] = field(default_factory=list)
    #: n -> the clock when a poll's answer first held it
    seen: dict[int, float] = field(default_factory=dict)
    #: Messages never stored (a consumer that may drop them).
    lost: int = 0
    low: int = 0

    def achieved_rate(self) -> float:
        """Messages/s the paced publisher really sent at."""
        if len(self.published) < 2:
            return 0.0
        return (len(self.published) - 1) / (self.published[-1] - self.published[0])

    def since_ns(self, now: float) -> int:
        """The time (ns) from which a poll must ask: the oldest message still awaited."""
        while self.low < len(self.published) and (
            self.low + 1 in self.seen or self.published[self.low] < now - GIVE_UP_S
        ):
            self.low += 1
        return _epoch_ns(self.at0) + (self.low + 1) * 1000

    def saw(self, numbers: Sequence[int], now: float) -> None:
        for n in numbers:
            self.seen.setdefault(n, now)

    def visible_latencies(self) -> list[float]:
        """Per message seen, publish to the poll that first saw it."""
        return [at - self.published[n - 1] for n, at in self.seen.items()]


def _epoch_ns(at: datetime) -> int:
    return (at - datetime(1970, 1, 1, tzinfo=UTC)) // timedelta(microseconds=1) * 1000


def numbers_since(influx: InfluxServer, db: str, measurement: str, since_ns: int) -> list[int]:
    """The reading numbers ``n`` of ``measurement``'s points stamped at or after ``since_ns``."""
    q = f'SELECT "n" FROM "{measurement}" WHERE time >= {since_ns}'
    series = influx.query(q, db=db, epoch="ns")["results"][0].get("series")
    return [round(v[1]) for v in series[0]["values"]] if series else []


def paced_run(
    publishers: Publishers,
    influx: InfluxServer,
    db: str,
    *,
    consumer: Consumer,
    measurement: str,
    rate: float,
    seconds: float,
    receipts: Receipts | None = None,
) -> LatencyRun:
    """Publish at ``rate`` for ``seconds`` while polling influxd; wait for every point."""
    total = max(1, round(rate * seconds))
    run = LatencyRun(measurement, at0=datetime.now(UTC))
    streams = Streams()
    failure: list[BaseException] = []
    finished = threading.Event()

    def publish_paced() -> None:
        pause = threading.Event()
        try:
            start = time.monotonic()
            for i in range(total):
                delay = start + i / rate - time.monotonic()
                if delay > 0:
                    pause.wait(delay)
                node, stream, seq = streams.next(i)
                sent_at = datetime.now(UTC)
                # Readings keep the run's own distinct timestamps; sent_at is the real send time.
                body = _readings(measurement, i + 1, 1, run.at0)
                payload = encode_envelope(
                    node=node, stream=stream, seq=seq, sent_at=sent_at, readings_json=body
                )
                now = time.monotonic()
                if receipts is not None:
                    receipts.expect(stream, seq, now)
                run.published.append(now)
                publishers.publish(i, TOPICS.data(node), payload)
        except BaseException as exc:  # handed to the main thread, which raises it
            failure.append(exc)
        finally:
            finished.set()

    thread = threading.Thread(target=publish_paced, name="bench-paced", daemon=True)
    thread.start()
    pause = threading.Event()
    progress = Progress(consumer, total, lambda: finished.is_set() and publishers.all_acked())
    while True:
        if failure:
            raise BenchError(f"paced publisher failed: {failure[0]}")
        consumer.check()
        since = run.since_ns(time.monotonic())
        numbers = numbers_since(influx, db, measurement, since)
        run.saw(numbers, time.monotonic())
        count = stored(influx, db, measurement)
        if progress.over(count, time.monotonic()) and finished.is_set():
            break
        pause.wait(LATENCY_POLL_S)
    thread.join()
    # Stored, but first seen after the polls had left it behind: its latency is at most this.
    final = time.monotonic()
    run.saw(numbers_since(influx, db, measurement, _epoch_ns(run.at0)), final)
    run.lost = total - len(run.seen)
    if receipts is not None:
        deadline = time.monotonic() + STALL_S
        while receipts.outstanding and time.monotonic() < deadline:
            pause.wait(0.05)
        if receipts.outstanding:
            raise BenchError(f"{receipts.outstanding} paced messages stored but never receipted")
    return run


def percentile(values: Sequence[float], p: int) -> float:
    """The ``p``-th percentile (1..99) of ``values``, in milliseconds."""
    if len(values) < 2:
        raise BenchError(f"too few latencies to take a percentile of: {len(values)}")
    return statistics.quantiles(values, n=100, method="inclusive")[p - 1] * 1000.0


# -- the benchmark ------------------------------------------------------------------------------


@dataclass
class Figures:
    """What one run measured: messages/s by consumer and size, latencies by consumer."""

    rates: dict[tuple[str, int], float] = field(default_factory=dict)
    #: CPU seconds per 1,000 messages of the consumer's own process, by consumer and size.
    cpu: dict[tuple[str, int], float] = field(default_factory=dict)
    visible: dict[str, list[float]] = field(default_factory=dict)
    receipted: list[float] = field(default_factory=list)
    #: Messages a consumer never stored, by consumer and size.
    lost: dict[tuple[str, int], int] = field(default_factory=dict)
    #: The paced rate each latency run really published at (messages/s), and messages lost.
    paced: dict[str, float] = field(default_factory=dict)
    paced_lost: dict[str, int] = field(default_factory=dict)
    #: What Node-RED logged as errors, most frequent first ("" when none).
    nodered_errors: str = ""

    def add(self, who: str, size: int, run: Throughput) -> None:
        self.rates[(who, size)] = run.rate
        self.cpu[(who, size)] = run.cpu
        self.lost[(who, size)] = run.lost


def _run_timeout(messages: int) -> float:
    # Generous: at 100 messages/s even a very slow machine finishes.
    return 60.0 + messages / 100


def measure(
    tmp: Path,
    *,
    messages: int,
    sizes: Sequence[int],
    latency_rate: float,
    latency_s: float,
    report: Report,
) -> Figures:
    """Start Mosquitto and influxd once, then run each consumer in turn against them."""
    ensure_nodered(report)
    figures = Figures()
    loads = {
        size: make_load(messages, per_message=size, measurement=f"bench_r{size}") for size in sizes
    }
    broker = MosquittoServer(tmp / "mosquitto")
    influx = InfluxServer(tmp / "influxd")
    report("starting Mosquitto and influxd")
    with broker, influx:
        for db in (NODERED_DB, OURS_DB):
            influx.query(f'CREATE DATABASE "{db}"')
        with Publishers(broker.host, broker.port) as publishers:
            for size, load in loads.items():
                report(f"bare subscriber, {messages:,} messages of {size}")
                figures.rates[("bare", size)] = bare_throughput(broker, publishers, load)
            publishers.wait_acked(60.0)

            report("starting Node-RED")
            with NodeRed(tmp / "nodered", broker=broker, influx=influx).start() as red:
                red.wait_ready(publishers)
                for size, load in loads.items():
                    report(f"Node-RED, {messages:,} messages of {size}")
                    figures.add(
                        "nodered",
                        size,
                        stored_throughput(red, influx, NODERED_DB, publishers, load),
                    )
                report(f"Node-RED, {latency_rate:,.0f} messages/s for {latency_s:g} s")
                run = paced_run(
                    publishers,
                    influx,
                    NODERED_DB,
                    consumer=red,
                    measurement="bench_latency",
                    rate=latency_rate,
                    seconds=latency_s,
                )
                figures.visible["nodered"] = run.visible_latencies()
                figures.paced["nodered"] = run.achieved_rate()
                figures.paced_lost["nodered"] = run.lost
                figures.nodered_errors = red.errors()

            report("starting our collector")
            receipts = Receipts(broker.host, broker.port)
            try:
                with Collector(tmp / "collector", broker=broker, influx=influx).start() as ours:
                    ours.wait_ready(publishers, receipts)
                    for size, load in loads.items():
                        report(f"our collector, {messages:,} messages of {size}")
                        figures.add(
                            "ours", size, stored_throughput(ours, influx, OURS_DB, publishers, load)
                        )
                    report(f"our collector, {latency_rate:,.0f} messages/s for {latency_s:g} s")
                    run = paced_run(
                        publishers,
                        influx,
                        OURS_DB,
                        consumer=ours,
                        measurement="bench_latency",
                        rate=latency_rate,
                        seconds=latency_s,
                        receipts=receipts,
                    )
                    figures.visible["ours"] = run.visible_latencies()
                    figures.receipted = list(receipts.latencies)
                    figures.paced["ours"] = run.achieved_rate()
                    figures.paced_lost["ours"] = run.lost
            finally:
                receipts.close()
    return figures


def rows(figures: Figures, *, messages: int, latency_rate: float) -> list[Row]:
    """The table's rows: throughput beside Node-RED and beside the ceiling, then latency."""
    out: list[Row] = []
    why = f" (its log, all runs: {figures.nodered_errors[:160]})" if figures.nodered_errors else ""
    for size in sorted({size for _who, size in figures.rates}):
        ours = figures.rates[("ours", size)]
        red = figures.rates[("nodered", size)]
        bare = figures.rates[("bare", size)]
        per = f"{size} reading{'s' if size > 1 else ''}/msg"
        what = f"collector msgs/s, {per}"
        out.append(
            Row(
                name=f"{what} ({messages:,} msgs)",
                ours=ours,
                unit="msgs/s",
                reference=red,
                reference_label="Node-RED 4 + node-red-contrib-influxdb (batch node, v1), "
                "messages it stored per second",
                target=f">= {2 * red:,.0f} msgs/s (2x Node-RED)",
            )
        )
        red_lost = figures.lost.get(("nodered", size), 0)
        out.append(
            Row(
                name=f"messages lost of {messages:,}, {per}",
                ours=figures.lost.get(("ours", size), 0),
                unit="msgs",
                reference=red_lost,
                reference_label=f"Node-RED{why if red_lost else ''}",
                higher_is_better=False,
                target="<= 0 (acked only after the write)",
            )
        )
        out.append(
            Row(
                name=f"{what}, vs the bare ceiling",
                ours=ours,
                unit="msgs/s",
                reference=bare,
                reference_label="bare paho QoS 1 subscriber that only counts (stores nothing)",
                target=f">= {0.6 * bare:,.0f} msgs/s (60 % of the ceiling)",
            )
        )
        if ("ours", size) in figures.cpu and ("nodered", size) in figures.cpu:
            out.append(
                Row(
                    name=f"consumer CPU per 1,000 msgs, {per}",
                    ours=figures.cpu[("ours", size)],
                    unit="CPU s",
                    reference=figures.cpu[("nodered", size)],
                    reference_label="Node-RED's process (influxd's CPU not counted for either)",
                    higher_is_better=False,
                )
            )
    at = f"at {latency_rate:,.0f} msg/s"
    poll_ms = LATENCY_POLL_S * 1000
    paced = {who: f"{rate:,.0f}" for who, rate in figures.paced.items()}
    red_lost = figures.paced_lost.get("nodered", 0)
    lost = f"; Node-RED lost {red_lost:,}{why}" if red_lost else ""
    for p in (50, 99):
        out.append(
            Row(
                name=f"e2e latency p{p} {at} (ms), publish to point queryable",
                ours=percentile(figures.visible["ours"], p),
                unit="ms",
                reference=percentile(figures.visible["nodered"], p),
                reference_label=(
                    f"Node-RED, influxd polled the same way (every {poll_ms:g} ms); "
                    f"paced at {paced.get('nodered', '?')} vs {paced.get('ours', '?')} msg/s{lost}"
                ),
                higher_is_better=False,
            )
        )
    for p in (50, 99):
        out.append(
            Row(
                name=f"e2e latency p{p} {at} (ms), publish to receipt at the node",
                ours=percentile(figures.receipted, p),
                unit="ms",
                reference_label="Node-RED sends no receipt",
                higher_is_better=False,
            )
        )
    return out


def run(
    messages: int = MESSAGES,
    *,
    sizes: Sequence[int] = SIZES,
    latency_rate: float = LATENCY_RATE,
    latency_s: float = LATENCY_S,
    report: Report = ignore,
) -> list[Row]:
    """Measure the three consumers at ``messages`` per throughput run, then the latency run."""
    with quiet_logs(), service_dir("bench-collector-") as tmp:
        figures = measure(
            tmp,
            messages=messages,
            sizes=sizes,
            latency_rate=latency_rate,
            latency_s=latency_s,
            report=report,
        )
    return rows(figures, messages=messages, latency_rate=latency_rate)


# -- the bare subscriber's own process ----------------------------------------------------------


def bare_subscriber(port: int, count: int, timeout: float) -> int:
    """Count ``count`` data messages at QoS 1; print ``ready``, then ``done <clock>``."""
    counted = Counter()
    last = [0.0]

    def on_message(_c: Any, _u: Any, _msg: mqtt.MQTTMessage) -> None:
        last[0] = time.monotonic()
        counted.add()

    client = connect("127.0.0.1", port, "bare-subscriber", inflight=PUBLISH_INFLIGHT)
    try:
        subscribed = Counter()
        client.on_subscribe = subscribed.add
        client.on_message = on_message
        client.subscribe(TOPICS.every("data"), qos=1)
        subscribed.wait_for(1, 10.0, "subscribed")
        print("ready", flush=True)
        counted.wait_for(count, timeout, "messages counted")
        print(f"done {last[0]!r}", flush=True)
    except BenchError as exc:
        print(f"failed {exc}", file=sys.stderr, flush=True)
        return 1
    finally:
        disconnect(client)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmark and print its rows; ``bare-subscriber`` is the ceiling's process."""
    parser = argparse.ArgumentParser(prog="python -m bench.bench_collector")
    sub = parser.add_subparsers(dest="command")
    bare = sub.add_parser("bare-subscriber", help="count data messages (run by the benchmark)")
    bare.add_argument("--port", type=int, required=True)
    bare.add_argument("--count", type=int, required=True)
    bare.add_argument("--timeout", type=float, required=True)
    parser.add_argument("--messages", type=int, default=MESSAGES)
    args = parser.parse_args(argv)
    if args.command == "bare-subscriber":
        return bare_subscriber(args.port, args.count, args.timeout)
    from rich.console import Console

    from bench.__main__ import render

    Console().print(render(run(args.messages), title="machikado collector benchmark"))
    return 0


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        sys.exit(main())
