"""``machikado hw``: hardware commands that need no hardware, such as decoding a GATT payload.

Imports stay light (no bleak, no gpiozero) so the command works on any host.
"""

from __future__ import annotations

import json
import re
from datetime import UTC, tzinfo
from typing import Annotated
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import typer

from hardware.errors import DecodeError
from protocol.errors import MachikadoError

app = typer.Typer(
    name="hw",
    help="Hardware: decode GATT characteristics and mobility adverts.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)

_SEPARATORS = re.compile(r"[\s:_-]+")
_NOT_HEX = re.compile(r"[^0-9a-fA-F]")


@app.callback()
def _hw() -> None:
    """Hardware: decode GATT characteristics and mobility adverts."""


def parse_hex(text: str) -> bytes:
    """Bytes from hex that may hold spaces, colons or dashes and a leading ``0x``.

    >>> parse_hex("02:b0 36").hex()
    '02b036'
    """
    digits = _SEPARATORS.sub("", text)
    if digits[:2].lower() == "0x":
        digits = digits[2:]
    if not digits:
        raise DecodeError("HEX is empty")
    bad = _NOT_HEX.search(digits)
    if bad is not None:
        raise DecodeError(f"HEX holds {bad.group()!r}, which is not a hex digit")
    if len(digits) % 2:
        raise DecodeError(f"HEX has an odd number of digits ({len(digits)})")
    return bytes.fromhex(digits)


def _zone(name: str) -> tzinfo:
    if name.upper() == "UTC":
        return UTC
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise DecodeError(f"unknown time zone {name!r}") from exc


@app.command()
def decode(
    characteristic: Annotated[
        str, typer.Argument(help="Name, alias or UUID: temperature, 2A1C, 0x2A1C, mobility ...")
    ],
    hex_payload: Annotated[
        list[str],
        typer.Argument(metavar="HEX", help="The payload in hex; spaces and colons are ignored."),
    ],
    tz: Annotated[
        str, typer.Option(help="Time zone of the device's clock (e.g. Asia/Tokyo).")
    ] = "UTC",
) -> None:
    """Decode one payload and print it as JSON with its units."""
    from hardware.gatt import decoder_for

    try:
        decoder = decoder_for(characteristic)
        payload = parse_hex(" ".join(hex_payload))
        decoded = decoder(payload, tz=_zone(tz))
    except MachikadoError as exc:
        typer.echo(f"machikado: {exc}", err=True)
        raise typer.Exit(2) from exc
    typer.echo(json.dumps(decoded.to_json(), indent=2, ensure_ascii=False))
