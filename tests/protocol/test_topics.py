"""Topics: built and parsed the same way on both sides, and nothing outside the contract."""

from __future__ import annotations

import pytest

from protocol import InvalidTopic, TopicParts, Topics


def test_topics_of_a_node() -> None:
    t = Topics("city/tsukuba")
    assert t.data("rr-01") == "city/tsukuba/v1/rr-01/data"
    assert t.birth("rr-01") == "city/tsukuba/v1/rr-01/birth"
    assert t.state("rr-01") == "city/tsukuba/v1/rr-01/state"
    assert t.receipt("rr-01") == "city/tsukuba/v1/rr-01/receipt"
    assert t.cmd("rr-01", "rebirth") == "city/tsukuba/v1/rr-01/cmd/rebirth"
    assert t.consult("kiosk-1", "reply") == "city/tsukuba/v1/kiosk-1/consult/reply"
    assert t.subtree("rr-01") == "city/tsukuba/v1/rr-01/#"
    assert t.every("data") == "city/tsukuba/v1/+/data"


@pytest.mark.parametrize("kind", ["data", "birth", "state", "receipt"])
def test_parse_inverts_build(kind: str) -> None:
    t = Topics()
    topic = getattr(t, kind)("veh-0001")
    assert t.parse(topic) == TopicParts(node="veh-0001", kind=kind)


@pytest.mark.parametrize(
    ("topic", "why"),
    [
        ("other/v1/rr-01/data", "not under"),
        ("machikado/v2/rr-01/data", "not under"),
        ("machikado/v1/rr-01", "no message kind"),
        ("machikado/v1/RR 01/data", "node id"),
        ("machikado/v1/rr-01/telemetry", "unknown kind"),
    ],
)
def test_foreign_topics_are_refused_with_a_reason(topic: str, why: str) -> None:
    with pytest.raises(InvalidTopic, match=why):
        Topics().parse(topic)


@pytest.mark.parametrize("node", ["", "a/b", "+", "#", "A", "x" * 64])
def test_node_ids_that_would_escape_the_acl_are_refused(node: str) -> None:
    with pytest.raises(InvalidTopic):
        Topics().data(node)


@pytest.mark.parametrize("prefix", ["", "a/#", "a/", "+"])
def test_bad_prefix(prefix: str) -> None:
    with pytest.raises(InvalidTopic):
        Topics(prefix)
