"""The kiosk's own widgets: buttons and labels that follow the language, text size and palette,
and a QR code drawn from its modules (rules in ``screens/widgets.kv``)."""

from __future__ import annotations

from typing import Any

import kiosk.screens  # noqa: F401  (Kivy's environment, before Kivy is imported)

# isort: split
from kivy.graphics import Color, Rectangle
from kivy.graphics.texture import Texture
from kivy.properties import BooleanProperty, ListProperty, NumericProperty, StringProperty
from kivy.uix.button import Button
from kivy.uix.gridlayout import GridLayout
from kivy.uix.label import Label
from kivy.uix.togglebutton import ToggleButton
from kivy.uix.widget import Widget


class KButton(Button):  # type: ignore[misc]  # Kivy has no type hints
    """A touch target at least 64 dp high, text wrapped, in the current font and palette."""

    #: "primary", "secondary" or "danger": which palette colours it takes.
    role = StringProperty("primary")
    #: A font for this button only (a language's own name); "" follows the language.
    font_override = StringProperty("")
    #: Text size relative to the kiosk's body text.
    scale = NumericProperty(1.0)
    #: The tallest text in its row, set by an :class:`EvenGrid` so the row's buttons match.
    row_text_height = NumericProperty(0)


class KToggle(ToggleButton):  # type: ignore[misc]  # Kivy has no type hints
    """A multi-select choice (the wizard's who / what); same size rules as :class:`KButton`."""

    #: What the choice stands for (a need tag), independent of the text shown.
    value = StringProperty("")
    scale = NumericProperty(1.0)
    row_text_height = NumericProperty(0)


class EvenGrid(GridLayout):  # type: ignore[misc]  # Kivy has no type hints
    """A grid of buttons in which every button of a row is as tall as the row's tallest text
    needs (a translation that wraps to two lines would otherwise leave a ragged row).

    In a ``.kv`` file::

        EvenGrid:
            cols: 2
            size_hint_y: None
            height: self.minimum_height
    """

    def add_widget(self, widget: Any, *args: Any, **kwargs: Any) -> None:
        super().add_widget(widget, *args, **kwargs)
        widget.bind(texture_size=self._even_rows)
        self._even_rows()

    def remove_widget(self, widget: Any, *args: Any, **kwargs: Any) -> None:
        widget.unbind(texture_size=self._even_rows)
        super().remove_widget(widget, *args, **kwargs)
        self._even_rows()

    def on_cols(self, *_args: Any) -> None:
        self._even_rows()

    def _even_rows(self, *_args: Any) -> None:
        cells = list(reversed(self.children))  # Kivy keeps the last added first
        cols = max(1, int(self.cols or 1))
        for start in range(0, len(cells), cols):
            row = cells[start : start + cols]
            tallest = max(cell.texture_size[1] for cell in row)
            for cell in row:
                cell.row_text_height = tallest


class KLabel(Label):  # type: ignore[misc]  # Kivy has no type hints
    """A wrapped label whose height follows its text (for scrolling lists and long questions)."""

    font_override = StringProperty("")
    scale = NumericProperty(1.0)
    #: White text for a coloured background (the emergency screen, tier boxes). A colour set on
    #: the instance in .kv would be overwritten whenever the palette changes; this is not.
    inverse = BooleanProperty(False)


class KTitle(KLabel):
    """A screen's heading."""

    scale = NumericProperty(1.45)


class QrCode(Widget):  # type: ignore[misc]  # Kivy has no type hints
    """A QR code of ``data``, black modules on a white quiet zone, scaled without blurring.

    In a ``.kv`` file::

        QrCode:
            data: "https://www.city.tsukuba.lg.jp/"
            size_hint: None, None
            size: dp(160), dp(160)
    """

    data = StringProperty("")
    #: Module count per side (0 while there is no data); for tests and layout.
    modules = 0
    colors = ListProperty([0, 0, 0, 1])

    def __init__(self, **kwargs: Any) -> None:
        self._texture: Texture | None = None
        super().__init__(**kwargs)
        self.bind(pos=self._redraw, size=self._redraw)
        self._make(self.data)

    def on_data(self, _instance: Any, value: str) -> None:
        self._make(value)

    def _make(self, data: str) -> None:
        if not data:
            self._texture = None
            self.modules = 0
            self._redraw()
            return
        # Imported at the first code drawn: qrcode is not needed for the first frame.
        from kiosk.qr import qr_matrix

        matrix = qr_matrix(data).rows
        n = len(matrix)
        # Texture rows run bottom-up; QR rows top-down.
        pixels = bytes(0 if cell else 255 for row in reversed(matrix) for cell in row)
        texture = Texture.create(size=(n, n), colorfmt="luminance")
        texture.blit_buffer(pixels, colorfmt="luminance", bufferfmt="ubyte")
        texture.mag_filter = "nearest"
        texture.min_filter = "nearest"
        self._texture = texture
        self.modules = n
        self._redraw()

    def _redraw(self, *_args: Any) -> None:
        if self.canvas is None:  # data set by the constructor, before the canvas exists
            return
        self.canvas.clear()
        if self._texture is None:
            return
        side = min(self.width, self.height)
        x = self.x + (self.width - side) / 2
        y = self.y + (self.height - side) / 2
        with self.canvas:
            Color(1, 1, 1, 1)
            Rectangle(pos=(x, y), size=(side, side), texture=self._texture)
