"""QR codes of a ticket's fetch address: a matrix the app draws, and a PNG."""

from __future__ import annotations

import io

import pytest
import qrcode
from PIL import Image

from kiosk.consult import Ticket
from kiosk.qr import BORDER, QrError, qr_matrix, qr_png


def test_matrix_is_the_code_of_the_payload_with_its_quiet_zone() -> None:
    payload = Ticket.new(consult_url="https://consult.example.org/t/").qr_payload
    m = qr_matrix(payload)
    # qrcode's own encoding of the same data at the same level gives the same modules.
    ref = qrcode.QRCode(error_correction=qrcode.constants.ERROR_CORRECT_M, border=BORDER)
    ref.add_data(payload)
    ref.make(fit=True)
    assert m.version == ref.version
    assert [list(r) for r in m.rows] == ref.get_matrix()
    assert m.size == 4 * m.version + 17 + 2 * BORDER
    # The quiet zone is light all round; the finder pattern's corner is dark.
    assert not any(m.rows[0])
    assert not any(r[0] for r in m.rows)
    assert m.rows[BORDER][BORDER]


def test_rgba_has_scale_squared_pixels_per_module_dark_on_light() -> None:
    m = qr_matrix("https://consult.example.org/t/1234-5#c=abc")
    data = m.rgba(scale=3)
    side = m.size * 3
    assert len(data) == side * side * 4
    px = BORDER * 3  # the first pixel of the top-left finder pattern, which is dark
    assert data[(px * side + px) * 4 : (px * side + px) * 4 + 4] == b"\x00\x00\x00\xff"
    assert data[:4] == b"\xff\xff\xff\xff"


def test_png_decodes_to_an_image_of_the_matrix() -> None:
    payload = "https://consult.example.org/t/1234-5#c=abc"
    m = qr_matrix(payload)
    image = Image.open(io.BytesIO(qr_png(payload, scale=5)))
    assert image.size == (m.size * 5, m.size * 5)
    gray = image.convert("L")
    for y, row in enumerate(m.rows):
        for x, dark in enumerate(row):
            assert (gray.getpixel((x * 5 + 2, y * 5 + 2)) == 0) == dark


@pytest.mark.parametrize(("payload", "reason"), [("", "empty"), ("x" * 301, "longer than 300")])
def test_unusable_payloads_are_refused_with_a_reason(payload: str, reason: str) -> None:
    with pytest.raises(QrError, match=reason):
        qr_matrix(payload)
