"""Sealing, tickets and the consultation wire messages (no broker needed)."""

from __future__ import annotations

import base64
import json
from urllib.parse import parse_qs, urlsplit

import pytest
from nacl.public import PrivateKey

from kiosk.consult import (
    CODE_BYTES,
    ConsultAnswer,
    ConsultDraft,
    ConsultError,
    ConsultRequest,
    ReplyKey,
    Ticket,
    check_consult_url,
    check_digit,
    decode_key,
    open_request,
    parse_request_message,
    reply_message,
    request_message,
    seal_request,
    ticket_is_valid,
    ticket_of,
)

URL = "https://consult.example.org/t/"


def _request(**over: object) -> ConsultRequest:
    fields: dict[str, object] = {
        "kiosk": "k-01",
        "ticket": "4821-8",
        "code": "c0de" * 4,
        "tier": "green",
        "language": "vi",
        "age_band": "adult",
        "reply_key": ReplyKey().public,
        "answers": [
            ConsultAnswer(question="Triệu chứng chính?", answer="Ho khan", question_id="symptom"),
            ConsultAnswer(question="Sốt?", answer="Sốt nhẹ"),
        ],
    }
    fields.update(over)
    return ConsultRequest.model_validate(fields)


def test_sealed_request_opens_with_the_private_key_only() -> None:
    service, stranger = PrivateKey.generate(), PrivateKey.generate()
    request = _request()
    sealed = seal_request(request, bytes(service.public_key))
    assert open_request(sealed, bytes(service)) == request
    with pytest.raises(ConsultError, match="cannot be opened"):
        open_request(sealed, bytes(stranger))


def test_sealed_bytes_hold_none_of_the_answers_in_clear() -> None:
    key = PrivateKey.generate()
    sealed = seal_request(_request(), bytes(key.public_key))
    for word in ("Ho khan", "Sốt", "symptom", "adult", "green", "c0dec0de"):
        assert word.encode() not in sealed
    # Sealing is randomised: the same request never gives the same bytes twice.
    assert seal_request(_request(), bytes(key.public_key)) != sealed


def test_request_message_on_the_wire_is_v_kiosk_ticket_and_sealed_base64() -> None:
    key = PrivateKey.generate()
    sealed = seal_request(_request(), bytes(key.public_key))
    payload = request_message(kiosk="k-01", ticket="4821-8", sealed=sealed)
    data = json.loads(payload)
    assert set(data) == {"v", "kiosk", "ticket", "sealed"}
    assert data["v"] == 1
    assert base64.b64decode(data["sealed"]) == sealed
    assert parse_request_message(payload) == ("k-01", "4821-8", sealed)


def test_a_wrong_public_key_size_is_a_clear_error() -> None:
    with pytest.raises(ConsultError, match="31 bytes; an X25519 key is 32"):
        seal_request(_request(), b"k" * 31)
    with pytest.raises(ConsultError, match=r"kiosk\.consult_public_key is not valid base64"):
        decode_key("not base64 !")
    assert decode_key(base64.b64encode(b"k" * 32).decode()) == b"k" * 32


def test_a_request_that_does_not_validate_names_fields_not_values() -> None:
    key = PrivateKey.generate()
    from nacl.public import SealedBox

    sealed = SealedBox(key.public_key).encrypt(b'{"v": 1, "answers": "Ho khan"}')
    with pytest.raises(ConsultError) as caught:
        open_request(sealed, bytes(key))
    assert "answers" in str(caught.value)
    assert "Ho khan" not in str(caught.value)


def test_draft_refuses_an_unknown_tier_and_an_empty_answer_list() -> None:
    with pytest.raises(ValueError, match="tier"):
        ConsultDraft.model_validate(
            {"answers": [{"question": "q", "answer": "a"}], "tier": "blue", "language": "en"}
        )
    with pytest.raises(ValueError, match="answers"):
        ConsultDraft.model_validate({"answers": [], "tier": "green", "language": "en"})


def test_check_digit_catches_every_single_wrong_digit() -> None:
    for n in range(0, 10_000, 7):
        digits = f"{n:04d}"
        good = check_digit(digits)
        for i in range(4):
            for other in "0123456789":
                if other != digits[i]:
                    changed = digits[:i] + other + digits[i + 1 :]
                    assert not ticket_is_valid(f"{changed}-{good}")


def test_ticket_is_four_digits_and_check_with_a_url_safe_code_of_96_bits() -> None:
    tickets = [Ticket.new(consult_url=URL) for _ in range(200)]
    for t in tickets:
        assert ticket_is_valid(t.number)
        assert len(base64.urlsafe_b64decode(t.code + "==")) == CODE_BYTES >= 8
        url = urlsplit(t.qr_payload)
        assert f"{url.scheme}://{url.netloc}{url.path}" == URL + t.number
        # The code is in the fragment, which a browser never sends: no server or proxy sees it.
        assert url.query == ""
        assert parse_qs(url.fragment) == {"c": [t.code]}
    assert len({t.code for t in tickets}) == len(tickets)


def test_ticket_repr_never_shows_the_code() -> None:
    t = Ticket.new(consult_url=URL)
    assert t.code not in repr(t)
    assert t.number in repr(t)


def test_a_new_ticket_avoids_numbers_still_pending() -> None:
    taken = {f"{n:04d}-{check_digit(f'{n:04d}')}" for n in range(10_000)}
    free = "0042-" + check_digit("0042")
    taken.discard(free)
    assert Ticket.new(consult_url=URL, avoid=frozenset(taken)).number == free


def test_consult_url_must_be_http_and_end_in_a_slash() -> None:
    assert check_consult_url(URL) == URL
    for bad in (
        "consult.example.org/t/",
        "https://consult.example.org/t",
        "ftp://x/",
        "https://consult.example.org/t/?k=/",
        "https://consult.example.org/t/#/",
    ):
        with pytest.raises(ConsultError, match="consult_url"):
            check_consult_url(bad)


def test_reply_opens_only_with_the_key_of_the_request_that_asked() -> None:
    mine, other = ReplyKey(), ReplyKey()
    text = "Hãy nghỉ ngơi và uống nhiều nước."
    payload = reply_message(ticket="4821-8", text=text, language="vi", reply_key=mine.public)
    assert "nghỉ ngơi" not in payload.decode()
    assert ticket_of(payload) == "4821-8"
    reply = mine.open(payload)
    assert (reply.ticket, reply.text, reply.language) == ("4821-8", text, "vi")
    with pytest.raises(ConsultError, match="cannot be opened"):
        other.open(payload)


def test_malformed_replies_are_clear_errors() -> None:
    with pytest.raises(ConsultError, match="not JSON"):
        ticket_of(b"{")
    with pytest.raises(ConsultError, match="v = 1"):
        ticket_of(b'{"v": 2, "ticket": "1"}')
    with pytest.raises(ConsultError, match="ticket must be a non-empty string"):
        ticket_of(b'{"v": 1}')
