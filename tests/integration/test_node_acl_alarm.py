"""A node that tries to publish outside its own subtree is stopped by the broker, and says so.

The node's id and MQTT username disagree (a misconfigured or cloned SD card): every topic it
uses belongs to another node. The shipped ACL refuses each publish (PUBACK reason 135 over
MQTT 5); the node must treat that as an alarm, not a success, and keep its readings.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from edge.standin import ReceiptStandin
from tests.integration.nodes import NodeProcess, wait_for, write_node_config
from tests.integration.test_broker_acl import PASSWORDS, SHIPPED_ACL
from tests.services import MosquittoFactory

pytestmark = pytest.mark.integration


def test_publish_outside_own_subtree_is_an_alarm_and_loses_nothing(
    mosquitto_factory: MosquittoFactory, tmp_path: Path
) -> None:
    broker = mosquitto_factory(users=PASSWORDS, acl_file=SHIPPED_ACL)
    config = write_node_config(
        tmp_path,
        node="rr-02",
        username="rr-01",
        password=PASSWORDS["rr-01"],
        port=broker.port,
        rate=50,
        count=100,
    )
    with ReceiptStandin(
        broker.host, broker.port, username="collector-1", password=PASSWORDS["collector-1"]
    ) as cloud:
        node = NodeProcess(config).start()
        wait_for("all readings produced", lambda: node.stats().produced >= 100, 30)
        wait_for("the refusal reported as an alarm", lambda: node.link().get("alarms", 0) > 0, 30)
        link = node.link()
        stats = node.stats()
        assert node.terminate() == 0
    assert link["connected"], "the connection itself is allowed; only the topics are not"
    assert cloud.readings == 0, "the broker must not deliver what the ACL refused"
    assert stats.receipted == 0
    assert stats.pending_readings >= 100, "refused readings stay in the outbox, none is lost"
    log = node.log.read_text()
    assert "publish_refused" in log
    assert "Not authorized" in log
