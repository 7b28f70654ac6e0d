"""``machikado cloud``: config errors, dead letters listed, shown and replayed, completeness."""

from __future__ import annotations

import json
import unicodedata
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import structlog
from typer.testing import CliRunner

from cloud.cli import app
from cloud.collector.batch import BatchWriter, Message
from cloud.collector.intake import Intake
from cloud.collector.points import link_time_ns
from cloud.config import load_config
from cloud.deadletter import DeadLetters, Policy
from cloud.errors import ConfigError
from cloud.fleet import load_fleet
from cloud.store import Point, open_store
from protocol import Reading, Topics, encode_envelope, encode_readings

STREAM = "stream-00000000000000000003"
NOW = datetime.now(UTC)


def write_fleet(path: Path, nodes: list[str]) -> None:
    text = '[[trials]]\nid = "t"\nname = "T"\n[[sites]]\nid = "s"\nname = "S"\ntrial = "t"\n'
    for n in nodes:
        text += f'[[nodes]]\nid = "{n}"\nkind = "kiosk"\ntrial = "t"\nsite = "s"\n'
    path.write_text(text, encoding="utf-8")


@pytest.fixture
def config(tmp_path: Path) -> Path:
    write_fleet(tmp_path / "fleet.toml", ["rr-01"])
    path = tmp_path / "collector.toml"
    path.write_text(
        f"""
[store]
kind = "sqlite"
path = "{tmp_path / "store.sqlite"}"

[deadletter]
path = "{tmp_path / "deadletter.sqlite"}"

[fleet]
manifest = "{tmp_path / "fleet.toml"}"
""",
        encoding="utf-8",
    )
    return path


def cloud(*args: str) -> tuple[int, str]:
    try:
        result = CliRunner().invoke(app, list(args))
    finally:
        # The command set logging up on the runner's stderr, which is closed now.
        structlog.reset_defaults()
    if result.exit_code != 0 and result.exception is not None:
        raise AssertionError(f"exit {result.exit_code}: {result.stderr}") from result.exception
    return result.exit_code, result.stdout


def envelope(node: str, seq: int) -> bytes:
    reading = Reading(m="synthetic", at=NOW - timedelta(seconds=1), fields={"n": seq})
    return encode_envelope(
        node=node, stream=STREAM, seq=seq, sent_at=NOW, readings_json=encode_readings([reading])
    )


def stored(config: Path, measurement: str) -> list[tuple[str, str]]:
    cfg = load_config(config)
    store = open_store(cfg.store)
    try:
        return [(r.key, str(r.tags.get("trial"))) for r in store.latest(measurement)]
    finally:
        store.close()


def test_replay_after_the_node_joins_the_manifest_stores_the_message(
    config: Path, tmp_path: Path
) -> None:
    with DeadLetters(tmp_path / "deadletter.sqlite") as dl:
        rid = dl.add(
            topic="machikado/v1/rr-09/data",
            payload=envelope("rr-09", 1),
            reasons=["unknown node"],
            node="rr-09",
            stream=STREAM,
            seq=1,
            received_at=NOW,
        )
    code, out = cloud("deadletter", "list", "--config", str(config))
    assert code == 0
    [listed] = json.loads(out)["records"]
    assert (listed["id"], listed["node"], listed["reasons"]) == (rid, "rr-09", ["unknown node"])

    code, out = cloud("deadletter", "replay", "--config", str(config))
    assert code == 0
    assert json.loads(out)["still_rejected"] == {str(rid): ["unknown node"]}
    assert stored(config, "synthetic") == []

    write_fleet(tmp_path / "fleet.toml", ["rr-01", "rr-09"])
    code, out = cloud("deadletter", "replay", "--config", str(config))
    assert code == 0
    assert json.loads(out)["replayed"] == [rid]
    assert stored(config, "synthetic") == [("rr-09", "t")]

    code, out = cloud("deadletter", "list", "--pending", "--config", str(config))
    assert json.loads(out)["records"] == []
    code, out = cloud("deadletter", "show", str(rid), "--config", str(config))
    shown = json.loads(out)
    assert shown["replayed_at"] is not None
    assert json.loads(shown["payload"])["node"] == "rr-09"


def test_replay_skips_a_payload_that_was_cut(config: Path, tmp_path: Path) -> None:
    with DeadLetters(tmp_path / "deadletter.sqlite", policy=Policy(max_payload_bytes=10)) as dl:
        rid = dl.add(topic="machikado/v1/rr-01/data", payload=envelope("rr-01", 1), reasons=["x"])
    code, out = cloud("deadletter", "replay", str(rid), "--config", str(config))
    assert code == 0
    assert "payload bytes were kept" in json.loads(out)["skipped"][str(rid)]


def test_completeness_reports_missing_seqs_from_the_store(config: Path) -> None:
    store = open_store(load_config(config).store)
    try:
        store.write(
            [
                Point(
                    "link",
                    {"node": "rr-01", "stream": STREAM},
                    {"seq": seq, "readings": 1, "latency_s": 0.1},
                    link_time_ns(NOW, seq),
                )
                for seq in (2, 3, 6)
            ]
        )
    finally:
        store.close()
    code, out = cloud("completeness", "--config", str(config))
    assert code == 0
    [stream] = json.loads(out)
    assert stream["missing"] == [[1, 1], [4, 5]]
    assert (stream["first"], stream["last"], stream["received"]) == (2, 6, 3)

    since = (NOW - timedelta(minutes=1)).isoformat()
    code, out = cloud("completeness", "--since", since, "--config", str(config))
    assert json.loads(out)[0]["missing"] == [[4, 5]]


def test_bad_config_is_one_line_naming_each_key(tmp_path: Path) -> None:
    path = tmp_path / "bad.toml"
    path.write_text("[batch]\nmax_points = 0\n[mqtt]\nport = 1883\ncolour = 1\n", encoding="utf-8")
    try:
        result = CliRunner().invoke(app, ["completeness", "--config", str(path)])
    finally:
        structlog.reset_defaults()
    assert result.exit_code == 2
    message = result.stderr
    assert "batch.max_points" in message
    assert "mqtt.colour: unknown key" in message
    with pytest.raises(ConfigError, match="cannot read it"):
        load_config(tmp_path / "absent.toml")


def test_environment_overrides_the_file(config: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MACHIKADO_MQTT__PORT", "1884")
    monkeypatch.setenv("MACHIKADO_MQTT__SHARED_GROUP", "collectors")
    monkeypatch.setenv("MACHIKADO_BATCH__MAX_DELAY_MS", "50")
    cfg = load_config(config)
    assert cfg.mqtt.port == 1884
    assert cfg.mqtt.data_filter() == "$share/collectors/machikado/v1/+/data"
    assert cfg.batch.max_delay_ms == 50
    assert cfg.store.kind == "sqlite"


#: What a terminal would act on: bidi override and isolate, C1 and C0 controls, DEL, zero width.
SNEAKY = "\u202eevil\u2066\x85\x1b[2J\x7f\u200b"


def _unshown(text: str) -> list[str]:
    """Characters of ``text`` a terminal acts on or hides (a newline between lines aside)."""
    cats = {"Cc", "Cf", "Zl", "Zp", "Cs"}
    return [f"U+{ord(c):04X}" for c in text if c != "\n" and unicodedata.category(c) in cats]


def test_dead_letters_are_printed_with_controls_and_bidi_overrides_escaped(
    config: Path, tmp_path: Path
) -> None:
    cfg = load_config(config)
    take = Intake(Topics("machikado"), load_fleet(cfg.fleet.manifest))
    reading = {"m": "visit", "at": NOW.strftime("%Y-%m-%dT%H:%M:%S.%fZ"), "fields": {"n": 1}}
    reading["tags"] = {"where": f"stall {SNEAKY}"}
    doc = {"v": 1, "node": "rr-01", "stream": STREAM, "seq": 1, "sent_at": reading["at"]}
    payload = json.dumps({**doc, "readings": [reading]}, ensure_ascii=False).encode()
    sent = [
        ("machikado/v1/rr-01/data", payload),
        (f"machikado/v1/rr{SNEAKY}/data", b"{}"),
    ]
    store = open_store(cfg.store)
    with DeadLetters(cfg.deadletter.path) as dl:
        writer = BatchWriter(store, dl, initial_s=0.01, max_s=0.05)
        written = writer.write([Message(t, p, NOW, take(t, p, NOW)) for t, p in sent])
    store.close()
    assert written.dead_lettered == 2

    code, out = cloud("deadletter", "list", "--config", str(config))
    assert code == 0
    assert _unshown(out) == []
    records = json.loads(out)["records"]
    assert [r["topic"] for r in records] == [t for t, _ in sent]
    for record in records:
        code, out = cloud("deadletter", "show", str(record["id"]), "--config", str(config))
        assert _unshown(out) == []
        assert "\\u202e" in out
        shown = json.loads(out)
        assert (shown["topic"], shown["payload"].encode()) in sent
