"""Remote consultation from a kiosk: the sealed request, tickets and one-time codes, replies.

What the resident answered is health information (要配慮個人情報 under Japan's APPI), so it is
sealed with the consultation service's public key (libsodium's sealed box, X25519 +
XSalsa20-Poly1305, through PyNaCl) before it leaves this module: the outbox file, the broker and
every log only ever see the sealed bytes. The request carries a fresh reply key, and the doctor's
answer comes back sealed to it, so only the kiosk session that asked can read it; a wiped
session forgets the key. Messages, under ``{prefix}/v1/{node}/consult/`` with QoS 1, version 1::

    request   kiosk -> cloud  {"v": 1, "kiosk": "k-01", "ticket": "4821-7", "sealed": "<b64>"}
              sealed: the JSON of :class:`ConsultRequest` (answers, tier, language, age band,
              kiosk, ticket, one-time code, reply key; never a name)
    accepted  cloud -> kiosk  {"v": 1, "ticket": "4821-7"}: stored; the kiosk's outbox drops it
    reply     cloud -> kiosk  {"v": 1, "ticket": "4821-7", "sealed": "<b64>"}
              sealed to the request's reply key: {"text": "...", "language": "en"}

The ticket number is what the resident reads off the screen (four digits and an ISO 7064
MOD 11,10 check digit); the one-time code (96 random bits, URL-safe) is the secret that lets a
phone fetch the answer at ``<consult_url><ticket>#c=<code>``, shown as a QR code. The code is in
the fragment (after ``#``), which a browser keeps to itself: it never reaches the server, a
proxy or their access logs; the phone page reads it from ``location.hash``.
"""

from __future__ import annotations

import base64
import binascii
import json
import secrets
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Annotated, Literal
from urllib.parse import urlsplit

from nacl.exceptions import CryptoError
from nacl.public import PrivateKey, PublicKey, SealedBox
from pydantic import BaseModel, ConfigDict, Field, StringConstraints, ValidationError

from kiosk.errors import KioskError
from protocol.messages import NodeId, UtcTime

#: Version of the consultation messages, carried as ``v``.
CONSULT_V: Literal[1] = 1
#: Topic suffixes below the node's level.
REQUEST_SUFFIX = "consult/request"
#: Where a phone fetches an answer unless the kiosk's config says otherwise.
DEFAULT_CONSULT_URL = "https://consult.example.org/t/"
#: Random bytes in a one-time code (96 bits; the brief asks for at least 64).
CODE_BYTES = 12
TIERS = ("red", "yellow", "green", "white")

_Text = Annotated[str, StringConstraints(min_length=1, max_length=500)]
_Id = Annotated[str, StringConstraints(min_length=1, max_length=64)]


class ConsultError(KioskError):
    """A consultation message or key that cannot be used; the message says what is wrong."""


def check_digit(digits: str) -> str:
    """The ISO 7064 MOD 11,10 check digit of a string of decimal digits.

    It catches every single wrong digit and about 98 % of swaps of two neighbours.

    >>> check_digit("4821")
    '8'
    """
    if not digits.isdigit() or not digits.isascii():
        raise ConsultError(f"check digit of {digits!r}: only the digits 0-9 are allowed")
    product = 10
    for d in digits:
        total = (product + int(d)) % 10 or 10
        product = (2 * total) % 11
    return str((11 - product) % 10)


def ticket_is_valid(ticket: str) -> bool:
    """Whether ``ticket`` looks like ``NNNN-C`` with the right check digit.

    >>> ticket_is_valid("4821-8"), ticket_is_valid("4812-8")
    (True, False)
    """
    number, _, check = ticket.partition("-")
    return (
        len(number) == 4
        and number.isdigit()
        and number.isascii()
        and len(check) == 1
        and check_digit(number) == check
    )


@dataclass(frozen=True, slots=True)
class Ticket:
    """What the resident takes away: a number to read out, and a code to fetch the answer by
    phone, inside ``qr_payload`` (the address the QR code shows).

    >>> t = Ticket.new(consult_url="https://consult.example.org/t/")
    >>> ticket_is_valid(t.number), t.qr_payload.endswith(f"/t/{t.number}#c={t.code}")
    (True, True)
    """

    number: str
    # The secret and the address holding it stay out of reprs, and so out of logs.
    code: str = field(repr=False)
    qr_payload: str = field(repr=False)
    created_at: datetime = field(default_factory=lambda: datetime.now(UTC))

    @classmethod
    def new(cls, *, consult_url: str, avoid: frozenset[str] = frozenset()) -> Ticket:
        """A fresh random ticket whose number is not in ``avoid`` (tickets still pending)."""
        base = check_consult_url(consult_url)
        if len(avoid) >= 10_000:
            raise ConsultError("every ticket number is in use; the outbox holds 10,000 requests")
        while True:
            digits = f"{secrets.randbelow(10_000):04d}"
            number = f"{digits}-{check_digit(digits)}"
            if number not in avoid:
                code = secrets.token_urlsafe(CODE_BYTES)
                # In the fragment: browsers never send it, so no server or proxy logs it.
                return cls(number=number, code=code, qr_payload=f"{base}{number}#c={code}")


def check_consult_url(base: str) -> str:
    """``base`` if it is an https (or http) URL ending in ``/``, with no query or fragment of
    its own (the ticket and the code follow it); else a clear error."""
    parts = urlsplit(base)
    if (
        parts.scheme not in ("https", "http")
        or not parts.netloc
        or not base.endswith("/")
        or "?" in base
        or "#" in base
    ):
        raise ConsultError(
            f"consult_url {base!r} must be an http(s) URL ending in '/' without '?' or '#', "
            "such as 'https://consult.example.org/t/'"
        )
    return base


class ConsultAnswer(BaseModel):
    """One question and the answer chosen, as the doctor reads them (in the resident's language,
    with the protocol's ids so the service can show them in another)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    question: _Text
    answer: _Text
    question_id: str = Field(default="", max_length=64)
    answer_id: str = Field(default="", max_length=64)


class ConsultDraft(BaseModel):
    """What the app hands the node for a request; the node adds kiosk, ticket, code and key.

    >>> ConsultDraft.model_validate({"answers": [{"question": "Fever?", "answer": "Yes"}],
    ...                              "tier": "green", "language": "en"}).age_band is None
    True
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    answers: list[ConsultAnswer] = Field(min_length=1, max_length=100)
    tier: Literal["red", "yellow", "green", "white"]
    language: _Id
    age_band: str | None = Field(default=None, max_length=64)


class ConsultRequest(BaseModel):
    """What a resident asks a remote doctor: sealed before it leaves the kiosk, never a name.

    >>> r = ConsultRequest(kiosk="k-01", ticket="4821-8", code="x" * 16, tier="green",
    ...                    language="en", age_band="adult", reply_key="A" * 44,
    ...                    answers=[ConsultAnswer(question="Main symptom?", answer="Cough")])
    >>> r.v, r.tier
    (1, 'green')
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    v: Literal[1] = CONSULT_V
    kiosk: NodeId
    ticket: _Id
    code: _Id
    tier: Literal["red", "yellow", "green", "white"]
    language: _Id
    age_band: str | None = Field(default=None, max_length=64)
    answers: list[ConsultAnswer] = Field(min_length=1, max_length=100)
    #: X25519 public key (base64) the reply is sealed to.
    reply_key: _Id
    created_at: UtcTime = Field(default_factory=lambda: datetime.now(UTC))


class ConsultReply(BaseModel):
    """The doctor's answer, as the kiosk shows it.

    >>> ConsultReply(ticket="4821-8", text="Rest and drink water.", language="en").language
    'en'
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    ticket: _Id
    text: Annotated[str, StringConstraints(min_length=1, max_length=5000)]
    language: _Id


def _public_key(key: bytes) -> PublicKey:
    if len(key) != PublicKey.SIZE:
        raise ConsultError(
            f"the consultation service's public key is {len(key)} bytes; an X25519 key is "
            f"{PublicKey.SIZE} (give it base64-encoded in kiosk.consult_public_key)"
        )
    return PublicKey(key)


def decode_key(text: str, *, what: str = "kiosk.consult_public_key") -> bytes:
    """The 32 bytes of a base64 X25519 key from config; a clear error naming ``what``."""
    try:
        key = base64.b64decode(text.strip(), validate=True)
    except (binascii.Error, ValueError):
        raise ConsultError(f"{what} is not valid base64") from None
    _public_key(key)
    return key


def seal_request(request: ConsultRequest, public_key: bytes) -> bytes:
    """The request's JSON, sealed so that only the holder of the matching private key reads it."""
    return SealedBox(_public_key(public_key)).encrypt(request.model_dump_json().encode())


def open_request(sealed: bytes, private_key: bytes) -> ConsultRequest:
    """Unseal a request (what the consultation service does with its private key)."""
    try:
        plain = SealedBox(PrivateKey(private_key)).decrypt(sealed)
    except (CryptoError, TypeError, ValueError) as exc:
        raise ConsultError(f"sealed consultation request cannot be opened: {exc}") from None
    try:
        return ConsultRequest.model_validate_json(plain)
    except ValidationError as exc:
        # Name the fields only: the values are the resident's answers.
        where = sorted({".".join(str(p) for p in e["loc"]) for e in exc.errors()})
        raise ConsultError(
            f"sealed consultation request is not a valid request (fields: {', '.join(where)})"
        ) from None


def request_message(*, kiosk: str, ticket: str, sealed: bytes) -> bytes:
    """The ``consult/request`` payload: who, which ticket, and the sealed request."""
    return json.dumps(
        {
            "v": CONSULT_V,
            "kiosk": kiosk,
            "ticket": ticket,
            "sealed": base64.b64encode(sealed).decode(),
        },
        separators=(",", ":"),
    ).encode()


def accepted_message(ticket: str) -> bytes:
    """The ``consult/accepted`` payload the service publishes once it stored a request."""
    return json.dumps({"v": CONSULT_V, "ticket": ticket}, separators=(",", ":")).encode()


def reply_message(*, ticket: str, text: str, language: str, reply_key: str) -> bytes:
    """The ``consult/reply`` payload: the answer sealed to the request's reply key."""
    key = decode_key(reply_key, what="the request's reply_key")
    plain = json.dumps({"text": text, "language": language}, ensure_ascii=False).encode()
    sealed = SealedBox(PublicKey(key)).encrypt(plain)
    return json.dumps(
        {"v": CONSULT_V, "ticket": ticket, "sealed": base64.b64encode(sealed).decode()},
        separators=(",", ":"),
    ).encode()


def _fields(payload: bytes, what: str, keys: tuple[str, ...]) -> dict[str, str]:
    try:
        data = json.loads(payload)
    except ValueError as exc:
        raise ConsultError(f"{what} is not JSON: {exc}") from None
    if not isinstance(data, dict) or data.get("v") != CONSULT_V:
        raise ConsultError(f"{what} must be a JSON object with v = {CONSULT_V}")
    out: dict[str, str] = {}
    for key in keys:
        value = data.get(key)
        if not isinstance(value, str) or not value:
            raise ConsultError(f"{what}: {key} must be a non-empty string")
        out[key] = value
    return out


def parse_request_message(payload: bytes) -> tuple[str, str, bytes]:
    """(kiosk, ticket, sealed bytes) of a ``consult/request`` payload."""
    data = _fields(payload, "consult request", ("kiosk", "ticket", "sealed"))
    try:
        sealed = base64.b64decode(data["sealed"], validate=True)
    except (binascii.Error, ValueError):
        raise ConsultError("consult request: sealed is not valid base64") from None
    return data["kiosk"], data["ticket"], sealed


def ticket_of(payload: bytes) -> str:
    """The ticket a ``consult/reply`` payload is for, without opening it."""
    return _fields(payload, "consult reply", ("ticket",))["ticket"]


class ReplyKey:
    """The private key one consultation's reply is sealed to; lives only in memory.

    >>> key = ReplyKey()
    >>> msg = reply_message(ticket="4821-8", text="OK", language="en", reply_key=key.public)
    >>> key.open(msg).text
    'OK'
    """

    def __init__(self) -> None:
        self._key = PrivateKey.generate()

    @property
    def public(self) -> str:
        """The public half, base64, to put into the sealed request."""
        return base64.b64encode(bytes(self._key.public_key)).decode()

    def open(self, payload: bytes) -> ConsultReply:
        """Unseal a ``consult/reply`` payload meant for this key."""
        data = _fields(payload, "consult reply", ("ticket", "sealed"))
        try:
            plain = SealedBox(self._key).decrypt(base64.b64decode(data["sealed"], validate=True))
            inner = json.loads(plain)
            return ConsultReply(
                ticket=data["ticket"], text=inner["text"], language=inner["language"]
            )
        except (CryptoError, binascii.Error, ValueError, KeyError, TypeError) as exc:
            raise ConsultError(f"consult reply cannot be opened: {type(exc).__name__}") from None
