"""The kiosk app: screens, the accessibility bar, the idle countdown and wipe, wired to the
domain (triage, content, session, translations) and to the kiosk's node (consultations,
usage counts).

The screens are thin (``screens/*.kv``, each loaded once); everything they show comes from the
session and the domain modules, which know nothing of Kivy. Navigation is
``manager.current = name``; anything from another thread reaches the UI through
``Clock.schedule_once``.

Start-up is ordered for a quick first frame: only the attract screen is built before it; the
node runtime starts and the other screens are built one per frame after it (a screen asked
for earlier is built on the spot). ``machikado kiosk`` goes further (:meth:`KioskApp.deferred`):
before the first frame it knows only the window settings, read straight from the TOML; the
node config is validated, the triage protocol and the content pack loaded right after it, and
what pydantic, structlog and the node runtime cost to import is paid then. A config refused at
that point is shown in the window, and :attr:`KioskApp.start_error` tells the caller to exit.
"""

from __future__ import annotations

import importlib
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import kiosk.screens  # noqa: F401  (Kivy's environment, before Kivy is imported)

# isort: split
from kivy.app import App
from kivy.clock import Clock
from kivy.config import Config
from kivy.lang import Builder
from kivy.metrics import sp
from kivy.properties import (
    BooleanProperty,
    DictProperty,
    ListProperty,
    NumericProperty,
    StringProperty,
)
from kivy.uix.floatlayout import FloatLayout
from kivy.uix.layout import Layout
from kivy.uix.screenmanager import NoTransition, ScreenManager
from kivy.uix.widget import Widget

from kiosk.errors import failure_of
from kiosk.i18n import Catalog
from kiosk.lazylog import LazyLogger
from kiosk.screens.attract import AttractScreen
from kiosk.session import IdleTimer, KioskSession, SessionUsage
from protocol.errors import MachikadoError

if TYPE_CHECKING:
    # Imported when used: pydantic (the config), structlog (content, read-aloud), the triage
    # engine, the later screens and their dependencies would otherwise be imported before the
    # first frame.
    from edge.config import KioskSection
    from kiosk.content import ContentStore
    from kiosk.screens.base import KioskScreen
    from kiosk.triage import TriageProtocol
    from kiosk.tts import ReadAloud

log = LazyLogger(__name__)

KV_DIR = Path(__file__).resolve().parent / "screens"
#: Screen names in the order a resident meets them, each with its class's name; one
#: ``<name>.kv`` and one module ``kiosk.screens.<name>`` each, imported when first built (only
#: the attract screen is needed for the first frame).
SCREENS: dict[str, str] = {
    "attract": "AttractScreen",
    "language": "LanguageScreen",
    "home": "HomeScreen",
    "triage": "TriageScreen",
    "emergency": "EmergencyScreen",
    "result": "ResultScreen",
    "doctor": "DoctorScreen",
    "wizard": "WizardScreen",
    "info": "InfoScreen",
}
#: How often the idle timer and the waiting time are looked at.
TICK_S = 0.2
#: How often the content pack file (``kiosk.content_pack``) is checked for a new version.
PACK_POLL_S = 3.0
#: Body text size, normal and in large-text mode.
TEXT_SP = 24.0
LARGE_TEXT_SP = 34.0

Rgba = tuple[float, float, float, float]
BLACK: Rgba = (0.0, 0.0, 0.0, 1.0)
WHITE: Rgba = (1.0, 1.0, 1.0, 1.0)
PALETTES: dict[bool, dict[str, Rgba]] = {
    # Normal: dark text on a light background, blue primary buttons.
    False: {
        "bg": (0.97, 0.97, 0.95, 1.0),
        "fg": (0.08, 0.08, 0.10, 1.0),
        "muted": (0.30, 0.30, 0.35, 1.0),
        "primary_bg": (0.05, 0.32, 0.62, 1.0),
        "primary_fg": WHITE,
        "secondary_bg": (0.84, 0.86, 0.90, 1.0),
        "secondary_fg": (0.08, 0.08, 0.10, 1.0),
        "danger_bg": (0.75, 0.05, 0.05, 1.0),
        "danger_fg": WHITE,
        "pressed_bg": (0.02, 0.18, 0.38, 1.0),
        "bar_bg": (0.88, 0.89, 0.92, 1.0),
        "border": (0.08, 0.08, 0.10, 1.0),
    },
    # High contrast: white and yellow on black, white borders on every button.
    True: {
        "bg": BLACK,
        "fg": WHITE,
        "muted": (0.92, 0.92, 0.92, 1.0),
        "primary_bg": (1.0, 0.86, 0.0, 1.0),
        "primary_fg": BLACK,
        "secondary_bg": (0.10, 0.10, 0.10, 1.0),
        "secondary_fg": WHITE,
        "danger_bg": (0.85, 0.0, 0.0, 1.0),
        "danger_fg": WHITE,
        "pressed_bg": (0.5, 0.5, 0.5, 1.0),
        "bar_bg": (0.05, 0.05, 0.05, 1.0),
        "border": WHITE,
    },
}
TIER_BG: dict[str, Rgba] = {
    "red": (0.80, 0.05, 0.05, 1.0),
    "yellow": (1.0, 0.80, 0.10, 1.0),
    "green": (0.10, 0.52, 0.25, 1.0),
    "white": WHITE,
}
TIER_FG: dict[str, Rgba] = {"red": WHITE, "yellow": BLACK, "green": WHITE, "white": BLACK}

_kv_loaded: set[str] = set()


class ConsultNode(Protocol):
    """What the app needs of the kiosk's node (``kiosk.node.KioskNode``, or a stand-in)."""

    def start(self) -> None: ...

    def stop(self) -> None: ...

    def request_consultation(self, request: dict[str, Any]) -> Any: ...

    def on_reply(self, callback: Callable[[Any, str, str], None]) -> None: ...

    def on_request_expired(self, callback: Callable[[Any], None]) -> None: ...

    def count_session(self, usage: SessionUsage) -> None: ...

    def declare_usage(self, dimension: str, values: Sequence[str]) -> None: ...

    def wipe(self) -> None: ...

    def on_content_pack(self, callback: Callable[[bytes], None]) -> None: ...


class KioskRoot(FloatLayout):  # type: ignore[misc]  # Kivy has no type hints
    """The frame: accessibility bar, screen manager, idle overlay (see ``root.kv``)."""


class IdleOverlay(FloatLayout):  # type: ignore[misc]  # Kivy has no type hints
    """The idle countdown over everything; while shown it takes every touch."""

    def on_touch_down(self, touch: Any) -> bool:
        if self.disabled:
            return False
        super().on_touch_down(touch)
        return True


@dataclass(frozen=True)
class WindowSettings:
    """What the kiosk needs of its config before the first frame: window, fonts, language.

    Read from the TOML without validating the rest (``kiosk.cli.window_settings``); the full
    :class:`~edge.config.KioskSection` comes right after the first frame.

    >>> WindowSettings(fullscreen=True, width=800, height=480).default_language
    'ja'
    """

    fullscreen: bool = False
    width: int = 1280
    height: int = 800
    font_cjk: Path = Path("/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc")
    font_latin: Path = Path("/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf")
    default_language: str = "ja"


class WindowLike(Protocol):
    """A :class:`WindowSettings` or a whole :class:`~edge.config.KioskSection`."""

    @property
    def fullscreen(self) -> bool: ...

    @property
    def width(self) -> int: ...

    @property
    def height(self) -> int: ...

    @property
    def font_cjk(self) -> Path: ...

    @property
    def font_latin(self) -> Path: ...

    @property
    def default_language(self) -> str: ...


#: Called right after the first frame: the validated kiosk settings and the node to use.
Setup = Callable[[], "tuple[KioskSection, ConsultNode | None]"]
#: How long a config refused after the window opened stays on screen before the app exits.
ERROR_HOLD_S = 15.0


def configure_window(settings: WindowLike) -> None:
    """Window size and fullscreen; must run before Kivy creates the window."""
    Config.set("graphics", "width", str(settings.width))
    Config.set("graphics", "height", str(settings.height))
    Config.set("graphics", "fullscreen", "auto" if settings.fullscreen else "0")
    Config.set("graphics", "resizable", "0" if settings.fullscreen else "1")
    # A touch kiosk has no mouse pointer to show and no right-click emulation to offer.
    Config.set("input", "mouse", "mouse,disable_multitouch")
    Config.set("kivy", "exit_on_escape", "0")


def screen_class(name: str) -> type[KioskScreen]:
    """The class of the screen called ``name``, its module imported now if it was not yet.

    >>> screen_class("home").__name__
    'HomeScreen'
    """
    if name not in SCREENS:
        raise KeyError(f"no screen called {name!r}")
    module = importlib.import_module(f"kiosk.screens.{name}")
    cls: type[KioskScreen] = getattr(module, SCREENS[name])
    return cls


def lay_out_now(widget: Widget) -> None:
    """Size a new widget tree top-down at once, parents before children.

    Kivy would lay it out over the next frames, after rendering each label first at the
    default widget size (100 px, less padding: a letter a line), then again at every width
    in between; sized first, every label is rendered once, at its real width.
    """
    if isinstance(widget, Layout):
        widget.do_layout()
    for child in widget.children:
        lay_out_now(child)


def load_kv(*names: str) -> None:
    """Load these ``.kv`` files (default: the widget rules, the frame and every screen), each
    once per process."""
    for name in names or ("widgets", "root", *SCREENS):
        if name not in _kv_loaded:
            Builder.load_file(str(KV_DIR / f"{name}.kv"))
            _kv_loaded.add(name)


class KioskApp(App):  # type: ignore[misc]  # Kivy has no type hints
    """The resident kiosk; ``machikado kiosk --config PATH`` runs it with the node's config::

    configure_window(settings)
    KioskApp(settings, node=KioskNode(config)).run()
    """

    lang = StringProperty("ja")
    font = StringProperty("")
    font_cjk = StringProperty("")
    font_latin = StringProperty("")
    large = BooleanProperty(False)
    contrast = BooleanProperty(False)
    fs = NumericProperty(TEXT_SP)
    warning = BooleanProperty(False)
    warning_left = NumericProperty(0)
    bg = ListProperty(PALETTES[False]["bg"])
    fg = ListProperty(PALETTES[False]["fg"])
    muted = ListProperty(PALETTES[False]["muted"])
    primary_bg = ListProperty(PALETTES[False]["primary_bg"])
    primary_fg = ListProperty(PALETTES[False]["primary_fg"])
    secondary_bg = ListProperty(PALETTES[False]["secondary_bg"])
    secondary_fg = ListProperty(PALETTES[False]["secondary_fg"])
    danger_bg = ListProperty(PALETTES[False]["danger_bg"])
    danger_fg = ListProperty(PALETTES[False]["danger_fg"])
    pressed_bg = ListProperty(PALETTES[False]["pressed_bg"])
    bar_bg = ListProperty(PALETTES[False]["bar_bg"])
    border = ListProperty(PALETTES[False]["border"])
    tier_bg = DictProperty(TIER_BG)
    tier_fg = DictProperty(TIER_FG)

    def __init__(
        self,
        settings: KioskSection | None,
        *,
        node: ConsultNode | None,
        catalog: Catalog | None = None,
        protocol: TriageProtocol | None = None,
        content: ContentStore | None = None,
        clock: Callable[[], float] = time.monotonic,
        today: Callable[[], date] = date.today,
        tts: ReadAloud | None = None,
        pack_poll_s: float = PACK_POLL_S,
        window: WindowLike | None = None,
        setup: Setup | None = None,
        error_hold_s: float = ERROR_HOLD_S,
    ) -> None:
        self.catalog = catalog or Catalog.load()
        self.pack_poll_s = pack_poll_s
        #: The last content pack refused: (where it came from, every reason), for staff.
        self.pack_refusal: tuple[str, tuple[str, ...]] | None = None
        #: A config refused after the window opened (deferred start); the app then stops.
        self.start_error: MachikadoError | None = None
        #: Watchdog ticks under systemd: fed (WATCHDOG=1 sent) or withheld (node unhealthy).
        self.watchdog = {"fed": 0, "withheld": 0}
        self.node = node
        self.clock = clock
        self.today = today
        self.session = KioskSession(clock=clock)
        self._return_to = "home"
        self._ticket_at: float | None = None
        self._setup = setup
        self._error_hold_s = error_hold_s
        #: False until the settings, protocol and content pack are in place (deferred start).
        self.ready = False
        early: WindowLike | None = window if window is not None else settings
        if early is None or (setup is None and settings is None):
            raise TypeError("KioskApp needs settings, or a window and a setup (deferred)")
        self.catalog.language(early.default_language)  # a bad default fails at start
        super().__init__()
        self.font_cjk = str(early.font_cjk)
        self.font_latin = str(early.font_latin)
        self.title = "machikado"
        self._apply_language(early.default_language)
        if settings is not None and setup is None:
            self._use_settings(settings, protocol=protocol, content=content, tts=tts)

    @classmethod
    def deferred(
        cls, window: WindowLike, setup: Setup, *, error_hold_s: float = ERROR_HOLD_S
    ) -> KioskApp:
        """A kiosk that knows only its window before the first frame; ``setup`` is called
        right after it for the validated settings and the node. A
        :class:`~protocol.errors.MachikadoError` from ``setup`` is shown for ``error_hold_s``,
        then the app stops with it in :attr:`start_error`::

            app = KioskApp.deferred(WindowSettings(), lambda: (KioskSection(), None))
            app.run()
        """
        return cls(None, node=None, window=window, setup=setup, error_hold_s=error_hold_s)

    def _use_settings(
        self,
        settings: KioskSection,
        *,
        protocol: TriageProtocol | None = None,
        content: ContentStore | None = None,
        tts: ReadAloud | None = None,
    ) -> None:
        from kiosk.content import ContentPack, ContentStore
        from kiosk.triage import TriageProtocol
        from kiosk.tts import ReadAloud

        self.settings = settings
        self.protocol = protocol or TriageProtocol.load(settings.triage_protocol)
        # Before the pack is read, so that a change made meanwhile is seen at the first poll.
        self._pack_file_seen = _file_signature(settings.content_pack)
        languages = [lang.code for lang in self.catalog.languages]
        self.content = content or ContentStore(
            ContentPack.load(settings.content_pack, languages=languages), languages=languages
        )
        self.tts = tts or ReadAloud(settings.tts_command)
        self.idle = IdleTimer(settings.idle_s, settings.warning_s, clock=self.clock)
        self.catalog.language(settings.default_language)
        self.ready = True

    # -- building ---------------------------------------------------------------------------

    def build(self) -> KioskRoot:
        from kivy.core.window import Window  # creates the window: only when the app runs

        load_kv("widgets", "root", "attract")
        root = KioskRoot()
        manager: ScreenManager = root.ids.manager
        manager.transition = NoTransition()
        manager.add_widget(AttractScreen(name="attract"))
        Window.bind(on_touch_down=self._on_any_touch)
        Window.bind(on_flip=self._on_first_flip)
        Clock.schedule_interval(self._tick, TICK_S)
        if self.ready:
            self._wire()
        self._refresh_all(root)
        root.size = Window.size
        lay_out_now(root)
        return root

    def _wire(self) -> None:
        """Replies and content packs from the node, and the pack file's watch, to the app."""
        if self.node is not None:
            self.node.on_reply(self._on_reply)
            self.node.on_request_expired(self._on_request_expired)
            self.node.on_content_pack(self._pack_from_cloud)
            self.node.declare_usage("language", [lang.code for lang in self.catalog.languages])
            self.node.declare_usage("info_category", self.content.pack.what_tags)
        if self.settings.content_pack is not None:
            Clock.schedule_interval(self._poll_pack_file, self.pack_poll_s)

    def on_start(self) -> None:
        if self.ready:
            log.info("kiosk_started", default_language=self.lang)

    def _on_first_flip(self, window: Any) -> None:
        # on_flip comes before the buffers swap: the next tick is after the first frame.
        window.unbind(on_flip=self._on_first_flip)
        Clock.schedule_once(self._after_first_frame, 0)

    def _after_first_frame(self, _dt: float) -> None:
        if not self.ready and not self._finish_setup():
            return
        if self.node is not None:
            self.node.start()
        self._tell_systemd_ready()
        Clock.schedule_once(self._build_next_screen, 0)

    def _tell_systemd_ready(self) -> None:
        """Under systemd (machikado-kiosk.service): READY=1 now that the window shows, then
        WATCHDOG=1 from this, Kivy's, loop while the node's runtime is healthy, so that a frozen
        screen or a dead node thread gets the kiosk restarted."""
        from edge.systemd import sd_notify, watchdog_interval

        sd_notify("READY=1")
        interval = watchdog_interval()
        if interval:
            Clock.schedule_interval(self._feed_watchdog, interval)

    def _feed_watchdog(self, _dt: float) -> None:
        from edge.systemd import sd_notify

        # A stand-in node without ``healthy`` (tests) counts as healthy.
        if getattr(self.node, "healthy", True):
            sd_notify("WATCHDOG=1")
            self.watchdog["fed"] += 1
        else:
            self.watchdog["withheld"] += 1

    def _finish_setup(self) -> bool:
        """The deferred start's second half; False (and the error shown) if it was refused."""
        assert self._setup is not None
        try:
            settings, node = self._setup()
            self.node = node
            self._use_settings(settings)
        except MachikadoError as exc:
            self._refuse_start(exc)
            return False
        self._wire()
        log.info("kiosk_started", default_language=self.lang)
        return True

    def _refuse_start(self, exc: MachikadoError) -> None:
        """Show why the kiosk cannot start, for the staff at the screen; then stop."""
        from kivy.uix.label import Label

        self.start_error = exc
        log.error("kiosk_config_refused", error=str(exc))
        attract = self.manager.get_screen("attract")
        attract.clear_widgets()
        message = Label(
            text=f"machikado kiosk cannot start:\n\n{exc}",
            font_name=self.font_latin,
            font_size=sp(TEXT_SP),
            color=self.fg,
            halign="center",
            valign="middle",
        )
        message.bind(size=lambda label, size: setattr(label, "text_size", (size[0] * 0.9, None)))
        attract.add_widget(message)
        attract.ids["error"] = message
        Clock.schedule_once(lambda _dt: self.stop(), self._error_hold_s)

    def _build_next_screen(self, _dt: float) -> None:
        missing = [name for name in SCREENS if not self.manager.has_screen(name)]
        if missing:
            self.screen(missing[0])
            Clock.schedule_once(self._build_next_screen, 0)
        else:
            log.info("kiosk_screens_built", screens=len(SCREENS))

    def on_stop(self) -> None:
        if not self.ready:
            return
        self.tts.stop()
        if self.node is not None:
            self.node.stop()

    @property
    def manager(self) -> ScreenManager:
        manager: ScreenManager = self.root.ids.manager
        return manager

    def screen(self, name: str) -> Any:
        """The screen called ``name`` (built now if it was not yet)."""
        manager = self.manager
        if not manager.has_screen(name):
            cls = screen_class(name)
            load_kv(name)
            screen = cls(name=name)
            manager.add_widget(screen)
            self._refresh(screen)
            # Only the current screen is the manager's child and sized by it; this one gets
            # the size it will be shown at now, so that its texts are rendered once.
            screen.size = manager.size
            lay_out_now(screen)
        return manager.get_screen(name)

    # -- texts and fonts --------------------------------------------------------------------

    def tr(self, key: str, lang: str, **params: object) -> str:
        """A UI text in ``lang`` (kv passes ``app.lang`` so the text follows a switch)."""
        return self.catalog.text(lang, key, **params)

    def ptext(self, lang: str, key: str) -> str:
        """A text of the triage protocol in ``lang``; "disclaimer" is the protocol's own."""
        if key == "disclaimer":
            key = self.protocol.disclaimer
        text: str = self.protocol.text(lang, key)
        return text

    def font_of(self, code: str) -> str:
        """The font file a language is drawn in."""
        family = self.catalog.language(code).font
        return str(self.font_cjk if family == "cjk" else self.font_latin)

    def _apply_language(self, code: str) -> None:
        self.font = self.font_of(code)
        self.lang = code

    # -- navigation -------------------------------------------------------------------------

    def go(self, name: str) -> None:
        """Show screen ``name`` (rebuilt for the current state first)."""
        screen = self.screen(name)
        self._refresh(screen)
        self.manager.current = name
        self.session.visit(name)

    def start(self) -> None:
        """A touch on the attract screen: a session begins with the choice of language."""
        self.session.start()
        self.idle.reset()
        self._return_to = "home"
        self.go("language")

    def open_language(self) -> None:
        """The bar's language button: choose, then come back to this screen."""
        current = self.manager.current
        if current not in ("attract", "language"):
            self._return_to = current
        if current == "attract":
            self.session.start()
            self.idle.reset()
        self.go("language")

    def choose_language(self, code: str) -> None:
        """Switch text and font together, then return to where the resident was."""
        self.session.language = code
        self._apply_language(code)
        self._refresh_all(self.root)
        self.go(self._return_to)

    def toggle_large(self) -> None:
        self.large = self.session.large_text = not self.large
        self.fs = sp(LARGE_TEXT_SP if self.large else TEXT_SP)

    def toggle_contrast(self) -> None:
        self.contrast = self.session.high_contrast = not self.contrast
        self._apply_palette()

    def _apply_palette(self) -> None:
        for key, value in PALETTES[self.contrast].items():
            setattr(self, key, value)

    def read_aloud(self) -> None:
        """Speak the visible texts of the current screen in the current language's voice."""
        texts = self.screen(self.manager.current).texts()
        self.tts.say("\n".join(texts), voice=self.catalog.language(self.lang).voice)

    # -- consultation -----------------------------------------------------------------------

    def begin_triage(self) -> None:
        self.session.start_triage(self.protocol)
        self.go("triage")

    def answer(self, option_id: str) -> None:
        """An answer button: next question, or the outcome (119 at once when red)."""
        triage = self.session.triage
        if triage is None:
            return
        triage.answer(option_id)
        outcome = triage.outcome
        if outcome is None:
            self.go("triage")
            return
        self.session.note_outcome()
        if outcome.is_emergency:
            emergency = self.screen("emergency")
            emergency.number = outcome.emergency_number or self.protocol.emergency_number
            emergency.reason = "\n".join(
                self.ptext(self.lang, a.option_text) for a in outcome.reasons
            )
            self.go("emergency")
        else:
            self.go("result")

    def triage_back(self) -> None:
        triage = self.session.triage
        if triage is None or not triage.back():
            self.go("home")
        else:
            self.go("triage")

    def consult_request(self) -> dict[str, Any]:
        """The request for a remote doctor: answers, tier, language, age band; never a name.

        Answer texts are the protocol's Japanese ones, for the doctor; ids name them exactly.
        """
        triage = self.session.triage
        outcome = triage.outcome if triage is not None else None
        if triage is None or outcome is None:
            raise RuntimeError("no finished interview to send")
        doctor_lang = self.protocol.languages[0]
        return {
            "tier": outcome.tier.value,
            "language": self.lang,
            "age_band": triage.age_band,
            "answers": [
                {
                    "question": self.protocol.text(doctor_lang, a.question_text),
                    "answer": self.protocol.text(doctor_lang, a.option_text),
                    "question_id": a.question_id,
                    "answer_id": a.option_id,
                }
                for a in outcome.answers
            ],
        }

    def request_doctor(self) -> None:
        """Send the sealed request through the node; show ticket, QR code, waiting time."""
        doctor = self.screen("doctor")
        if self.node is None:
            doctor.phase = "unavailable"
            return
        from kiosk.consult import ConsultError

        try:
            ticket = self.node.request_consultation(self.consult_request())
        except ConsultError as exc:  # the resident sees "not available", staff the reason
            log.error("consult_request_failed", error=str(exc))  # written to name no value
            doctor.phase = "unavailable"
            return
        except Exception as exc:  # its message may quote an answer: type and frames only
            log.error("consult_request_failed", **failure_of(exc))
            doctor.phase = "unavailable"
            return
        self.session.ticket = ticket
        self.session.consult_requested = True
        self.session.reply = None
        self._ticket_at = self.clock()
        doctor.reply_text = ""  # an answer to an earlier request is not this one's
        doctor.ticket_number = str(ticket.number)
        doctor.code = str(ticket.code)
        doctor.qr_payload = str(ticket.qr_payload)
        doctor.waited_s = 0
        doctor.phase = "waiting"

    def _on_reply(self, ticket: Any, text: str, _language: str) -> None:
        # Called on the Kivy thread (the node's dispatch goes through Clock).
        mine = self.session.ticket
        if mine is None or ticket.number != mine.number:
            log.info("consult_reply_not_for_this_session")
            return
        self.session.reply = text
        doctor = self.screen("doctor")
        doctor.reply_text = self.session.reply
        doctor.phase = "replied"
        self._ticket_at = None

    def _on_request_expired(self, ticket: Any) -> None:
        # Called on the Kivy thread (the node's dispatch goes through Clock).
        mine = self.session.ticket
        if mine is None or ticket.number != mine.number:
            return
        self.session.ticket = None
        self._ticket_at = None
        doctor = self.screen("doctor")
        doctor.ticket_number = doctor.code = doctor.qr_payload = ""
        doctor.waited_s = 0
        doctor.ttl_minutes = max(1, math.ceil(self.settings.consult_ttl_s / 60))
        doctor.phase = "expired"

    # -- information ------------------------------------------------------------------------

    def open_wizard(self) -> None:
        self.go("wizard")

    def choose_need(self, kind: str, tag: str, state: str) -> None:
        chosen = self.session.wizard_who if kind == "who" else self.session.wizard_what
        if state == "down":
            chosen.add(tag)
        else:
            chosen.discard(tag)

    def show_info(self, who: set[str], what: set[str]) -> None:
        """Rank the current pack's items for these needs and show them with QR codes."""
        self.session.wizard_who = set(who)
        self.session.wizard_what = set(what)
        self.go("info")

    def ranked_items(self) -> list[Any]:
        """The current pack's items for the wizard's choices, in the current language."""
        pack = self.content.pack
        items = pack.rank(
            self.session.wizard_who, self.session.wizard_what, self.today(), self.lang
        )
        self.session.view_info(self.session.wizard_what)
        for ranked in items:
            self.session.view_info(set(), ranked.item.id)
        return items

    def offer_content_pack(self, raw: bytes, *, source: str = "content pack") -> list[str]:
        """A new content pack (retained MQTT message or file): used only if valid.

        Returns the reasons it was refused ([] = now in use). A refused pack leaves the current
        one in place; the reasons are in the log for staff and in :attr:`pack_refusal`. The
        pack in use offered again (a retained message at reconnect) changes nothing.
        """
        if self.content.holds(raw):
            log.debug("content_pack_unchanged", source=source)
            return []
        reasons = self.content.replace(raw, source=source)
        if reasons:
            self.pack_refusal = (source, tuple(reasons))
            return reasons
        if self.node is not None:
            self.node.declare_usage("info_category", self.content.pack.what_tags)
        if self.root is not None:
            Clock.schedule_once(lambda _dt: self._refresh_all(self.root))
        return reasons

    def _pack_from_cloud(self, raw: bytes) -> None:
        # Called on the Kivy thread (the node's dispatch goes through Clock).
        self.offer_content_pack(raw, source="mqtt")

    def _poll_pack_file(self, _dt: float) -> None:
        """A changed ``kiosk.content_pack`` file is offered like a pack from the cloud."""
        path = self.settings.content_pack
        if path is None:
            return
        seen = _file_signature(path)
        if seen == self._pack_file_seen:
            return
        self._pack_file_seen = seen
        if seen is None:
            log.warning("content_pack_file_missing", path=str(path))
            return
        try:
            raw = path.read_bytes()
        except OSError as exc:
            log.warning("content_pack_file_unreadable", path=str(path), error=exc.strerror)
            return
        self.offer_content_pack(raw, source=str(path))

    # -- idle and wipe ----------------------------------------------------------------------

    def _on_any_touch(self, _window: Any, _touch: Any) -> bool:
        if not self.ready:
            return True  # nothing to start yet: the touch goes nowhere
        if not self.warning:
            self.idle.touch()
        return False

    def more_time(self) -> None:
        """The countdown's "more time" button: longer idle periods for this resident."""
        self.session.more_time = True
        self.idle.more_time()
        self.warning = False

    def finish(self) -> None:
        """The bar's "finish" button: the resident leaves; wipe now."""
        self.wipe()

    def wipe(self) -> None:
        """End the session: counted in the usage, then everything forgotten, attract shown."""
        if self.session.started and self.node is not None:
            try:
                self.node.count_session(self.session.usage())
            except Exception as exc:  # counting must never keep a session alive
                # The type only: the message could name what the resident chose.
                log.error("session_usage_not_counted", error=type(exc).__name__)
        self.tts.stop()
        if self.node is not None:
            self.node.wipe()
        self.session.wipe()
        self.idle.reset()
        self._ticket_at = None
        self._return_to = "home"
        self.warning = False
        self.warning_left = 0
        self.large = False
        self.fs = sp(TEXT_SP)
        self.contrast = False
        self._apply_palette()
        self._apply_language(self.settings.default_language)
        for screen in self.manager.screens:
            screen.reset()
        self._refresh_all(self.root)
        self.manager.current = "attract"

    def _tick(self, _dt: float) -> None:
        if self._ticket_at is not None:
            self.screen("doctor").waited_s = int(self.clock() - self._ticket_at)
        if not self.session.started:
            return
        state = self.idle.state()
        if state.is_expired:
            self.wipe()
        elif state.is_warning:
            self.warning_left = state.seconds_left
            self.warning = True
        else:
            self.warning = False

    def _refresh_all(self, root: Any) -> None:
        manager: ScreenManager = root.ids.manager
        for screen in manager.screens:
            self._refresh(screen)

    def _refresh(self, screen: Any, *, again: bool = False) -> None:
        """``screen.refresh()``, guarded: whatever fails, the kiosk stays up. A content pack
        that passed its checks and still fails on screen is taken back (the pack before it,
        or the shipped sample), every screen is rebuilt with that one, and staff are told."""
        try:
            screen.refresh()
        except Exception as exc:
            # The type only: a message could name what the resident chose (their language).
            error = type(exc).__name__
            if again or not self.ready:
                log.error("screen_refresh_failed", error=error)
                return
            failed = self.content.pack
            back = self.content.roll_back()
            log.error(
                "screen_refresh_failed",
                error=error,
                pack=failed.id,
                revision=failed.revision,
                now_showing=back.revision if back is not None else None,
            )
            if back is None:
                return
            self.pack_refusal = (
                "screen",
                (
                    f"pack {failed.id} revision {failed.revision} failed on screen ({error}); "
                    f"back to {back.id} revision {back.revision}; see machikado kiosk check-pack",
                ),
            )
            if self.node is not None:
                self.node.declare_usage("info_category", back.what_tags)
            for each in self.manager.screens:
                self._refresh(each, again=True)


def _file_signature(path: Path | None) -> tuple[int, int, int] | None:
    """What tells a rewritten file from the one seen before: (mtime ns, size, inode)."""
    if path is None:
        return None
    try:
        st = path.stat()
    except OSError:
        return None
    return (st.st_mtime_ns, st.st_size, st.st_ino)
