"""The collector's checking process: what happens when it dies, cannot start, or the store is down.

The collector (``machikado cloud collect``) checks and writes in a child process by default
(``batch.check_process``); its contract must hold across the process boundary: nothing acked
that is not stored, and no child left writing on its own.
"""

from __future__ import annotations

import threading
from datetime import UTC, datetime
from pathlib import Path

import psutil
import pytest

from cloud.collector.batch import Abandoned, Received
from cloud.collector.checking import ProcessChecker, _Result
from cloud.config import CollectorConfig
from cloud.errors import CheckerFailed
from tests.cloud.harness import (
    CollectorProcess,
    cloud_command,
    write_collector_config,
    write_fleet,
)
from tests.cloud.test_collector_process import (
    STREAM,
    acks_from_collector,
    envelope,
    sent_to_collector,
    setup,
    stored,
)
from tests.integration.nodes import wait_for
from tests.services import MosquittoServer, RecordingClient
from tests.services.ports import free_port

pytestmark = pytest.mark.integration


def checker_of(collector: CollectorProcess) -> psutil.Process:
    """The collector's checking process (its other child is multiprocessing's tracker)."""
    assert collector.proc is not None
    parent = psutil.Process(collector.proc.pid)

    def found() -> list[psutil.Process]:
        return [
            p
            for p in parent.children()
            if "spawn_main" in " ".join(p.cmdline()) and "resource_tracker" not in p.cmdline()[-1]
        ]

    wait_for("the checking process", lambda: len(found()) == 1, 30)
    return found()[0]


def test_a_dead_checker_stops_the_collector_with_nothing_acked_then_all_is_stored_once(
    mosquitto: MosquittoServer, tmp_path: Path
) -> None:
    config, db = setup(tmp_path, mosquitto)
    collector = CollectorProcess(config, broker=mosquitto).start()
    checker_of(collector).kill()
    with RecordingClient(mosquitto) as node:
        for seq in range(1, 4):
            node.publish("machikado/v1/rr-01/data", envelope(seq))
    wait_for("the collector to stop", lambda: not collector.alive(), 30)
    assert collector.proc is not None
    assert collector.proc.returncode != 0
    assert "checking process" in collector.log_tail()
    assert acks_from_collector(mosquitto) == 0
    # At least the message that met the dead checker was in its hands; on a busy machine the
    # collector may stop before the broker sent it the others, which wait in its session.
    assert sent_to_collector(mosquitto) >= 1

    again = CollectorProcess(config, broker=mosquitto).start()
    wait_for("the redelivered messages stored", lambda: stored(db, "synthetic") == 3, 30)
    wait_for("the broker to get the acks", lambda: acks_from_collector(mosquitto) >= 3, 20)
    assert again.terminate() == 0
    assert stored(db, "synthetic") == 3
    assert stored(db, "link") == 3


def test_a_checker_retrying_a_down_store_exits_when_its_collector_is_killed(
    mosquitto: MosquittoServer, tmp_path: Path
) -> None:
    fleet = write_fleet(tmp_path / "fleet.toml", ["rr-01"])
    nobody = {"kind": "influx_v1", "url": f"http://127.0.0.1:{free_port()}"}
    config = write_collector_config(
        tmp_path / "collector", broker=mosquitto, store=nobody, manifest=fleet.path
    )
    collector = CollectorProcess(config, broker=mosquitto).start()
    checker = checker_of(collector)
    with RecordingClient(mosquitto) as node:
        node.publish("machikado/v1/rr-01/data", envelope(1))
    wait_for(
        "the checker to retry the store",
        lambda: "store_unavailable_retrying" in collector.log_tail(),
        30,
    )
    collector.kill()
    try:
        checker.wait(10)  # psutil.TimeoutExpired fails the test: the orphan kept writing
    finally:
        if checker.is_running():
            checker.kill()


def test_a_checker_that_cannot_start_is_a_one_line_error(
    mosquitto: MosquittoServer, tmp_path: Path
) -> None:
    config, _db = setup(tmp_path, mosquitto)
    (tmp_path / "fleet.toml").unlink()
    collector = CollectorProcess(config)
    collector._spawn([*cloud_command(), "collect", "--config", str(config)])
    assert collector.proc is not None
    assert collector.proc.wait(60) == 2
    assert "fleet.toml" in collector.log_tail(3)


@pytest.fixture
def down_store_config(tmp_path: Path) -> CollectorConfig:
    """A config whose store is an InfluxDB nobody listens for, retried quickly."""
    fleet = write_fleet(tmp_path / "fleet.toml", ["rr-01"])
    return CollectorConfig.model_validate(
        {
            "store": {"kind": "influx_v1", "url": f"http://127.0.0.1:{free_port()}"},
            "deadletter": {"path": str(tmp_path / "dl.sqlite")},
            "fleet": {"manifest": str(fleet.path)},
            "retry": {"initial_s": 0.01, "max_s": 0.05},
        }
    )


def test_store_retries_are_reported_and_giving_up_abandons_the_batch(
    down_store_config: CollectorConfig,
) -> None:
    checker = ProcessChecker(down_store_config)
    retries = threading.Semaphore(0)
    checker.on_retry = retries.release
    try:
        pending = checker.submit(
            [Received("machikado/v1/rr-01/data", envelope(1), datetime.now(UTC), mid=1, qos=1)]
        )
        for _ in range(3):
            assert retries.acquire(timeout=30), "no retry reported while the store is down"
        checker.give_up()
        with pytest.raises(Abandoned):
            pending.result()
    finally:
        checker.close()


def test_batches_come_back_in_order_with_their_own_seqs(tmp_path: Path) -> None:
    fleet = write_fleet(tmp_path / "fleet.toml", ["rr-01"])
    cfg = CollectorConfig.model_validate(
        {
            "store": {"kind": "sqlite", "path": str(tmp_path / "store.sqlite")},
            "deadletter": {"path": str(tmp_path / "dl.sqlite")},
            "fleet": {"manifest": str(fleet.path)},
        }
    )
    checker = ProcessChecker(cfg)
    try:
        topic = "machikado/v1/rr-01/data"
        now = datetime.now(UTC)
        pendings = [
            checker.submit([Received(topic, envelope(seq), now) for seq in range(first, first + 5)])
            for first in (1, 6, 11)
        ]
        seqs = [pending.result().seqs[("rr-01", STREAM)] for pending in pendings]
        assert seqs == [set(range(1, 6)), set(range(6, 11)), set(range(11, 16))]
        bad = checker.submit([Received(topic, b"{", now)]).result()
        assert bad.dead_lettered == 1
    finally:
        checker.close()
    with pytest.raises(CheckerFailed):
        checker.submit([Received(topic, envelope(16), now)])


class _Answers:
    """Stands for the pipe from a checking process: hands out scripted answers, then EOF."""

    def __init__(self, *answers: tuple[str, int, object]) -> None:
        self.answers = list(answers)

    def recv(self) -> tuple[str, int, object]:
        if not self.answers:
            raise EOFError
        return self.answers.pop(0)


def _reading(answers: _Answers) -> tuple[ProcessChecker, dict[int, object]]:
    """A ProcessChecker's answer reader over ``answers``, with batches 1 and 2 handed over."""
    checker = ProcessChecker.__new__(ProcessChecker)
    checker.on_retry = None
    checker._lock = threading.Lock()
    checker._taken, checker._written, checker._failure = {}, {}, None
    checker._conn = answers  # type: ignore[assignment]
    checker._death = lambda exc: "gone"  # type: ignore[method-assign]
    results: dict[int, object] = {}
    for batch_id in (1, 2):
        checker._written[batch_id] = _Result()
        results[batch_id] = checker._written[batch_id]
    return checker, results


def test_a_failed_write_fails_its_batch_and_every_batch_after_it() -> None:
    checker, results = _reading(_Answers(("failed", 1, "OperationalError: disk I/O error")))
    checker._read()
    for batch_id in (1, 2):
        with pytest.raises(CheckerFailed, match="disk I/O error"):
            results[batch_id].result()  # type: ignore[attr-defined]
    with pytest.raises(CheckerFailed):
        checker.submit([])


def test_an_answer_out_of_turn_fails_every_batch_instead_of_hanging() -> None:
    checker, results = _reading(_Answers(("written", 7, None)))
    checker._read()
    for batch_id in (1, 2):
        with pytest.raises(CheckerFailed, match="cannot be read"):
            results[batch_id].result()  # type: ignore[attr-defined]
