"""The real kiosk app with its real node on the real Mosquitto, and content packs arriving.

Each ``scenario_*`` runs in a fresh process (see conftest.py) with the real
:class:`kiosk.node.KioskNode`, whose runtime connects to the test's broker; the ``test_*``
functions start the broker, play the cloud's side and start the scenarios. The consultation
service runs in the test process: the private key never enters the kiosk's process.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from nacl.public import PrivateKey
from pydantic import SecretStr

from edge.config import NodeConfig
from tests.kiosk.conftest import TEST_PACK, Kiosk, RunScenario
from tests.kiosk.consult_service import (
    CLOUD_USER,
    ConsultService,
    kiosk_config,
    publish_content_pack,
    shipped_acl_broker,
)
from tests.kiosk.test_app_flows import _green_path, _start_in
from tests.services import MosquittoFactory, MosquittoServer

REPLY = "Please rest tonight and see your family doctor tomorrow morning."
#: How long a scenario waits for something that crosses the broker.
BROKER_WAIT_S = 30.0


def _shot(k: Kiosk, name: str) -> None:
    k.driver.screenshot(Path(k.params["shots"]) / f"{name}.png")


# -- a consultation answered over the real broker ----------------------------------------------


def scenario_green_path_doctor_reply_over_mosquitto(k: Kiosk) -> None:
    _start_in(k, "en")
    k.tap_id("home", "consult")
    k.wait_for_screen("triage")
    for n, option in enumerate(_green_path(k), start=1):
        k.tap_id("triage", f"opt_{option}")
        k.driver.wait_until(lambda n=n: len(k.app.session.triage.answers) == n)
    k.wait_for_screen("result")
    k.tap_id("result", "ask_doctor")
    k.wait_for_screen("doctor")
    k.tap_id("doctor", "send")
    doctor = k.app.screen("doctor")
    k.driver.wait_until(lambda: doctor.phase in ("waiting", "replied"))
    ticket = k.node.current_ticket
    assert ticket is not None, "the real node issued the ticket"
    assert k.widget("doctor", "qr").data == ticket.qr_payload
    assert ticket.number in k.widget("doctor", "ticket").text
    # The consultation service (the test process) opens the request and answers through the
    # broker; the reply comes back on consult/reply and is shown on this screen.
    k.driver.wait_until(lambda: doctor.phase == "replied", timeout_s=BROKER_WAIT_S)
    assert k.widget("doctor", "reply").text == k.params["reply"]
    assert any(k.params["reply"] in t for t in k.texts())
    assert ticket.number in k.widget("doctor", "ticket").text, "the ticket stays on screen"
    _shot(k, "doctor_reply")
    print("TICKET:", ticket.number)


def test_green_path_doctor_request_is_answered_over_the_real_mosquitto(
    run_scenario: RunScenario, mosquitto: MosquittoServer, tmp_path: Path
) -> None:
    key = PrivateKey.generate()
    config = kiosk_config(tmp_path / "node", port=mosquitto.port, public_key=bytes(key.public_key))
    shots = tmp_path / "shots"
    with ConsultService(mosquitto, private_key=key, reply=REPLY) as service:
        proc = run_scenario(
            "tests.kiosk.test_app_on_broker:scenario_green_path_doctor_reply_over_mosquitto",
            node_config=config,
            params={"reply": REPLY, "shots": str(shots)},
        )
        requests = service.requests()
    assert requests, "the sealed request reached the consultation service"
    request = requests[0]
    assert f"TICKET: {request.ticket}" in proc.stdout, "the service answered the shown ticket"
    assert (request.kiosk, request.tier, request.language) == ("k-01", "green", "en")
    assert request.answers, "the answers went to the doctor"
    assert (shots / "doctor_reply.png").stat().st_size > 10_000


# -- a request nobody answers runs out ---------------------------------------------------------


def scenario_request_runs_out_over_mosquitto(k: Kiosk) -> None:
    _start_in(k, "ja")
    k.tap_id("home", "consult")
    k.wait_for_screen("triage")
    for n, option in enumerate(_green_path(k), start=1):
        k.tap_id("triage", f"opt_{option}")
        k.driver.wait_until(lambda n=n: len(k.app.session.triage.answers) == n)
    k.wait_for_screen("result")
    k.tap_id("result", "ask_doctor")
    k.wait_for_screen("doctor")
    k.tap_id("doctor", "send")
    doctor = k.app.screen("doctor")
    k.driver.wait_until(lambda: doctor.phase == "waiting")
    # Nobody accepts it: after the TTL the real node drops it and the screen says so.
    k.driver.wait_until(lambda: doctor.phase == "expired", timeout_s=BROKER_WAIT_S)
    assert k.node.runtime.outbox.message_keys() == []
    assert any("期限切れ" in t for t in k.texts())
    _shot(k, "doctor_expired")


def test_a_request_nobody_answers_runs_out_and_the_screen_says_so(
    run_scenario: RunScenario, mosquitto: MosquittoServer, tmp_path: Path
) -> None:
    key = PrivateKey.generate()
    config = kiosk_config(tmp_path / "node", port=mosquitto.port, public_key=bytes(key.public_key))
    config = config.model_copy(
        update={"kiosk": config.kiosk.model_copy(update={"consult_ttl_s": 3.0})}
    )
    shots = tmp_path / "shots"
    proc = run_scenario(
        "tests.kiosk.test_app_on_broker:scenario_request_runs_out_over_mosquitto",
        node_config=config,
        params={"shots": str(shots)},
    )
    assert "consult_requests_ran_out" in proc.stdout + proc.stderr
    assert (shots / "doctor_expired.png").stat().st_size > 10_000


# -- content packs over MQTT -------------------------------------------------------------------


def pack_variant(revision: str, *, title_en: str, drop_vi: bool = False) -> bytes:
    """The UI test pack with another revision and first item title; ``drop_vi`` breaks it."""
    pack = json.loads(TEST_PACK)
    pack["revision"] = revision
    first = pack["items"][0]
    first["title"] = {**first["title"], "en": title_en}
    if drop_vi:
        del first["title"]["vi"]
    return json.dumps(pack, ensure_ascii=False).encode()


NEW_TITLE = "Infant check-ups (new dates)"


def _show_info_for_parents(k: Kiosk) -> list[str]:
    k.app.go("home")
    k.tap_id("home", "info")
    k.wait_for_screen("wizard")
    for wid in ("who_parent_small_children", "what_health"):
        if k.widget("wizard", wid).state != "down":
            k.tap_id("wizard", wid)
    k.tap_id("wizard", "show")
    k.wait_for_screen("info")
    texts: list[str] = k.texts()
    return texts


def scenario_retained_pack_replaces_the_catalogue(k: Kiosk) -> None:
    # The cloud published the new pack (retained) before the kiosk started: it arrives on connect.
    k.driver.wait_until(lambda: k.app.content.pack.revision == "2", timeout_s=BROKER_WAIT_S)
    _start_in(k, "en")
    texts = _show_info_for_parents(k)
    assert NEW_TITLE in texts, texts
    assert "Infant check-ups" not in texts, "the old pack's title is gone"
    # Now the cloud sends a broken pack: refused with reasons, the pack in use stays.
    params = k.params
    publish_content_pack(
        params["host"], params["port"], "k-01", params["bad_pack"].encode(), params["password"]
    )
    k.driver.wait_until(lambda: k.app.pack_refusal is not None, timeout_s=BROKER_WAIT_S)
    source, reasons = k.app.pack_refusal
    assert source == "mqtt"
    assert any("vi" in r for r in reasons), reasons
    assert k.app.content.pack.revision == "2"
    texts = _show_info_for_parents(k)
    assert NEW_TITLE in texts, "the refused pack changed nothing on screen"
    _shot(k, "info_after_refusal")


def test_a_retained_pack_from_the_cloud_replaces_the_catalogue_and_a_bad_one_is_refused(
    run_scenario: RunScenario, mosquitto_factory: MosquittoFactory, tmp_path: Path
) -> None:
    broker, passwords = shipped_acl_broker(mosquitto_factory, tmp_path, node="k-01")
    publish_content_pack(
        broker.host,
        broker.port,
        "k-01",
        pack_variant("2", title_en=NEW_TITLE),
        passwords[CLOUD_USER],
    )
    config = _with_password(
        kiosk_config(tmp_path / "node", port=broker.port, public_key=bytes(32)),
        passwords["k-01"],
    )
    bad = pack_variant("3", title_en="Broken", drop_vi=True).decode()
    proc = run_scenario(
        "tests.kiosk.test_app_on_broker:scenario_retained_pack_replaces_the_catalogue",
        node_config=config,
        params={
            "host": broker.host,
            "port": broker.port,
            "password": passwords[CLOUD_USER],
            "bad_pack": bad,
            "shots": str(tmp_path / "shots"),
        },
    )
    log = proc.stdout + proc.stderr
    assert "content_pack_replaced" in log
    assert "content_pack_refused" in log
    assert "vi" in log.split("content_pack_refused", 1)[1], "the log names what is missing"


def _with_password(config: NodeConfig, password: str) -> NodeConfig:
    mqtt = config.mqtt.model_copy(update={"password": SecretStr(password)})
    return config.model_copy(update={"mqtt": mqtt})


# -- content packs as a file -------------------------------------------------------------------


def scenario_pack_file_is_watched(k: Kiosk) -> None:
    path = Path(k.params["pack_file"])
    _start_in(k, "en")
    assert "Infant check-ups" in _show_info_for_parents(k)
    # A broken pack written over the file: refused, the old one kept.
    path.write_bytes(k.params["bad_pack"].encode())
    k.driver.wait_until(lambda: k.app.pack_refusal is not None)
    source, reasons = k.app.pack_refusal
    assert source == str(path)
    assert any("vi" in r for r in reasons), reasons
    assert k.app.content.pack.revision == "1"
    assert "Infant check-ups" in _show_info_for_parents(k)
    # A good one: used at once, and the info screen shows it.
    path.write_bytes(k.params["good_pack"].encode())
    k.driver.wait_until(lambda: k.app.content.pack.revision == "2")
    texts = _show_info_for_parents(k)
    assert NEW_TITLE in texts, texts


def test_a_pack_file_is_watched_a_bad_one_refused_a_good_one_used(
    run_scenario: RunScenario, tmp_path: Path
) -> None:
    path = tmp_path / "pack.json"
    path.write_text(TEST_PACK, encoding="utf-8")
    params: dict[str, Any] = {
        "pack_file": str(path),
        "bad_pack": pack_variant("3", title_en="Broken", drop_vi=True).decode(),
        "good_pack": pack_variant("2", title_en=NEW_TITLE).decode(),
    }
    proc = run_scenario(
        "tests.kiosk.test_app_on_broker:scenario_pack_file_is_watched",
        content_pack=path,
        params=params,
    )
    assert "content_pack_refused" in proc.stdout + proc.stderr
