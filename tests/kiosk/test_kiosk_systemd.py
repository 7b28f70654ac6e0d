"""The kiosk under systemd (machikado-kiosk.service, Type=notify, WatchdogSec): READY=1 once the
window shows, WATCHDOG=1 from Kivy's loop, none once its node's runtime is gone. The node's
runtime thread says nothing to systemd itself, or it would keep a frozen screen alive."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from tests.kiosk.conftest import Kiosk, RunScenario
from tests.kiosk.consult_service import kiosk_config
from tests.services import MosquittoServer

#: Half of it is the feeding interval: 0.2 s, so the scenario needs only a few seconds.
WATCHDOG_USEC = "400000"
MARK = b"STATUS=scenario: node stopped"


def scenario_watchdog_fed_while_the_node_runs_and_withheld_after(kiosk: Kiosk) -> None:
    from edge.systemd import sd_notify

    kiosk.driver.wait_until(lambda: kiosk.app.watchdog["fed"] >= 3)
    assert kiosk.app.watchdog["withheld"] == 0
    kiosk.node.stop()  # as if the node's thread had died
    assert not kiosk.node.healthy
    sd_notify(MARK.decode())
    kiosk.driver.wait_until(lambda: kiosk.app.watchdog["withheld"] >= 3)


def test_kiosk_notifies_ready_feeds_the_watchdog_from_its_ui_loop_and_stops_without_its_node(
    run_scenario: RunScenario,
    mosquitto: MosquittoServer,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    path = tmp_path / "notify.sock"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as systemd:
        systemd.bind(str(path))
        monkeypatch.setenv("NOTIFY_SOCKET", str(path))
        monkeypatch.setenv("WATCHDOG_USEC", WATCHDOG_USEC)
        run_scenario(
            "tests.kiosk.test_kiosk_systemd:"
            "scenario_watchdog_fed_while_the_node_runs_and_withheld_after",
            node_config=kiosk_config(tmp_path / "node", port=mosquitto.port, public_key=bytes(32)),
        )
        got = []
        systemd.setblocking(False)
        try:
            while True:
                got.append(systemd.recv(256))
        except BlockingIOError:
            pass

    assert got[0] == b"READY=1"
    assert got.count(b"READY=1") == 1, "only the app says READY, not the node's runtime"
    mark = got.index(MARK)
    assert got[1:mark].count(b"WATCHDOG=1") >= 3
    assert set(got[1:mark]) == {b"WATCHDOG=1"}
    assert got[mark + 1 :] == [], "nothing fed the watchdog once the node was gone"
