"""QR codes for the kiosk: a ticket's fetch address or a content item's link, as a matrix or PNG.

The `qrcode` library does the encoding (error correction level M, which survives a scuffed or
glaring kiosk screen, and the standard four-module quiet zone). The app draws
:meth:`QrMatrix.rgba` into a Kivy texture, or shows :func:`qr_png`; neither needs a window.
"""

from __future__ import annotations

import io
from dataclasses import dataclass

import qrcode
import qrcode.constants
from qrcode.exceptions import DataOverflowError
from qrcode.image.pil import PilImage

from kiosk.errors import KioskError

#: Modules of quiet zone around the code, as ISO/IEC 18004 asks for.
BORDER = 4
#: Payloads longer than this are refused: a denser code is hard to scan off a screen.
MAX_PAYLOAD = 300


class QrError(KioskError):
    """A payload that cannot be made into a QR code a phone reads easily."""


@dataclass(frozen=True, slots=True)
class QrMatrix:
    """A QR code as rows of dark (True) and light modules, quiet zone included.

    >>> m = qr_matrix("https://consult.example.org/t/4821-8#c=abc")
    >>> m.version, m.size == len(m.rows) == 4 * m.version + 17 + 2 * BORDER
    (3, True)
    """

    version: int
    rows: tuple[tuple[bool, ...], ...]

    @property
    def size(self) -> int:
        """Modules per side, quiet zone included."""
        return len(self.rows)

    def rgba(self, scale: int = 8) -> bytes:
        """Pixels, ``scale`` per module, top row first, RGBA (black on white).

        For a Kivy texture: ``Texture.create(size=(n, n))``, ``blit_buffer(data,
        colorfmt="rgba")`` and ``flip_vertical()`` (Kivy's rows run bottom-up).
        """
        if scale < 1:
            raise QrError(f"scale is {scale}; it must be at least 1 pixel per module")
        dark, light = b"\x00\x00\x00\xff" * scale, b"\xff\xff\xff\xff" * scale
        out = bytearray()
        for row in self.rows:
            line = b"".join(dark if module else light for module in row)
            out += line * scale
        return bytes(out)


def _code(payload: str) -> qrcode.QRCode[PilImage]:
    if not payload:
        raise QrError("a QR code needs a payload; this one is empty")
    if len(payload) > MAX_PAYLOAD:
        raise QrError(
            f"QR payload of {len(payload)} characters is longer than {MAX_PAYLOAD}; "
            "use a shorter link"
        )
    code: qrcode.QRCode[PilImage] = qrcode.QRCode(
        error_correction=qrcode.constants.ERROR_CORRECT_M, border=BORDER, image_factory=PilImage
    )
    code.add_data(payload)
    try:
        code.make(fit=True)
    except DataOverflowError as exc:
        raise QrError(f"QR payload does not fit a QR code: {exc}") from None
    return code


def qr_matrix(payload: str) -> QrMatrix:
    """The QR code of ``payload`` as a matrix of modules."""
    code = _code(payload)
    assert code.version is not None  # make(fit=True) chose one
    return QrMatrix(
        version=code.version, rows=tuple(tuple(bool(m) for m in r) for r in code.get_matrix())
    )


def qr_png(payload: str, *, scale: int = 8) -> bytes:
    """The QR code of ``payload`` as a PNG, ``scale`` pixels per module."""
    if scale < 1:
        raise QrError(f"scale is {scale}; it must be at least 1 pixel per module")
    code = _code(payload)
    code.box_size = scale
    buffer = io.BytesIO()
    code.make_image().save(buffer)
    return buffer.getvalue()
