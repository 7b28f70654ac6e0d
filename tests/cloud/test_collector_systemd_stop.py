"""``machikado cloud collect`` stopped as systemd stops its unit: SIGTERM to the whole process
group (the collector and its checking process), with a real Mosquitto and a real InfluxDB. The
drain is a success: exit 0, every message stored and acked."""

from __future__ import annotations

import os
import re
import signal
import subprocess
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from protocol import Reading, encode_envelope, encode_readings
from tests.cloud.harness import (
    CollectorProcess,
    influx_rows,
    influx_store,
    write_collector_config,
    write_fleet,
)
from tests.integration.nodes import wait_for
from tests.services import InfluxServer, MosquittoServer, RecordingClient

pytestmark = pytest.mark.integration

STREAM = "stream-00000000000000000011"
CLIENT = "machikado-collector"
COUNT = 20
#: The batch is written only once the collector is told to stop, so the stop has work to do.
HOLD = {"MACHIKADO_BATCH__MAX_DELAY_MS": "60000", "MACHIKADO_BATCH__IDLE_MS": "60000"}
DB = "machikado"


class CollectorUnit(CollectorProcess):
    """The collector in a process group of its own, as systemd starts a service."""

    def _spawn(self, argv: Sequence[str]) -> None:
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(
                list(argv),
                stdout=out,
                stderr=subprocess.STDOUT,
                env=self.env,
                start_new_session=True,
            )

    def stop_like_systemd(self, timeout: float = 60) -> int:
        """SIGTERM to every process of the group at once (KillMode=control-group or mixed with
        the main process's children); return the collector's exit status."""
        assert self.proc is not None
        os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)
            raise AssertionError(f"collector ignored SIGTERM:\n{self.log_tail()}") from None


def envelope(seq: int) -> bytes:
    now = datetime.now(UTC)
    reading = Reading(m="synthetic", at=now - timedelta(milliseconds=seq), fields={"n": seq})
    return encode_envelope(
        node="rr-01", stream=STREAM, seq=seq, sent_at=now, readings_json=encode_readings([reading])
    )


def stored_seqs(influx: InfluxServer) -> list[int]:
    try:
        rows = influx_rows(influx, DB, 'SELECT "n" FROM "synthetic"')
    except Exception:  # the database is made with the first write
        return []
    return sorted(int(r["n"]) for r in rows)


def test_sigterm_to_the_process_group_drains_stores_everything_and_exits_0(
    mosquitto: MosquittoServer, influxdb: InfluxServer, tmp_path: Path
) -> None:
    fleet = write_fleet(tmp_path / "fleet.toml", ["rr-01"])
    config = write_collector_config(
        tmp_path / "collector", broker=mosquitto, store=influx_store(influxdb), manifest=fleet.path
    )
    collector = CollectorUnit(config, broker=mosquitto, env=HOLD)
    collector.start()
    assert collector.proc is not None
    try:
        with RecordingClient(mosquitto) as node:
            for seq in range(1, COUNT + 1):
                node.publish("machikado/v1/rr-01/data", envelope(seq))

        def handed_over() -> int:
            return mosquitto.log_path.read_text().count(f"Sending PUBLISH to {CLIENT} ")

        wait_for(f"{COUNT} messages handed over", lambda: handed_over() >= COUNT, 30)
        assert stored_seqs(influxdb) == []
        code = collector.stop_like_systemd()
    finally:
        if collector.alive():
            os.killpg(collector.proc.pid, signal.SIGKILL)

    assert code == 0, collector.log_tail()
    assert stored_seqs(influxdb) == list(range(1, COUNT + 1))
    acks = mosquitto.log_path.read_text().count(f"Received PUBACK from {CLIENT} ")
    assert acks == COUNT
    log = collector.log.read_text()
    assert "collector_stopped" in log
    # The checking process left by itself when the collector closed the pipe to it.
    assert re.search(r"checker_stopped .*exitcode=0", log), collector.log_tail()
    assert collector.dead_letters() == []
