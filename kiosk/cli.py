"""``machikado kiosk``: run the resident kiosk, or render every screen to PNG for review.

machikado kiosk --config firmware_config/nodes/kiosk-sim.toml
machikado kiosk snapshot --out docs/kiosk [--config PATH]
machikado kiosk check-pack PATH       # every reason a content pack would be refused; exit 2

The kiosk opens its window first and validates its config right after the first frame: before
it, only the window settings are read, with :mod:`tomllib` (:func:`window_settings`). A config
refused then is shown in the window and, when the window closes, raised like any config error
(one line on stderr, exit status 2). What this module imports at the top counts as start time.
"""

from __future__ import annotations

import os
import tempfile
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

from kiosk.errors import KioskError
from kiosk.lazylog import LazyLogger
from machikado.cliparams import PlainCommand, PlainGroup
from machikado.logs import finish_configure

if TYPE_CHECKING:
    from edge.config import KioskSection, NodeConfig
    from kiosk.app import ConsultNode, WindowLike, WindowSettings

log = LazyLogger(__name__)

app = typer.Typer(
    help="The resident kiosk (Kivy): consultation and information on a touch screen.",
    invoke_without_command=True,
    # Its options read without pydantic: the window opens sooner (see machikado.cliparams).
    cls=PlainGroup,
)

#: (file name suffix, large text, high contrast) of each snapshot variant.
VARIANTS: tuple[tuple[str, bool, bool], ...] = (
    ("", False, False),
    ("-large", True, False),
    ("-contrast", False, True),
    ("-large-contrast", True, True),
)


def check_fonts(settings: WindowLike) -> None:
    """A font file that is not there is a clear error at start, not boxes on screen."""
    for key in ("font_cjk", "font_latin"):
        path: Path = getattr(settings, key)
        if not path.is_file():
            raise KioskError(
                f"kiosk.{key}: font file {path} does not exist "
                "(Debian / Raspberry Pi OS: fonts-noto-cjk, fonts-dejavu-core)"
            )


ConfigOption = typer.Option(None, "--config", "-c", help="The kiosk node's TOML.")
OutOption = typer.Option(..., "--out", "-o", help="Directory for the PNG files.")
ErrorHoldOption = typer.Option(
    15.0,
    "--error-hold-s",
    min=0.0,
    help="How long a config error found after the window opened stays on screen.",
)
#: Environment overrides of these sections can change the window: then no early read.
_EARLY_ENV = ("MACHIKADO_KIOSK__", "MACHIKADO_NODE__")


@app.callback()
def main(
    ctx: typer.Context,
    config: Path | None = ConfigOption,
    error_hold_s: float = ErrorHoldOption,
) -> None:
    """Run the kiosk: fullscreen when kiosk.fullscreen (the Pi), else a window."""
    if ctx.invoked_subcommand is not None:
        return
    if config is None:
        raise typer.BadParameter("give the kiosk's config: --config PATH", param_hint="--config")
    early = window_settings(config)
    if early is None:
        # Not simply readable: validate it whole now, so a bad file fails before any window.
        run(load_kiosk_config(config))
        return
    check_fonts(early)
    run_deferred(config, early, error_hold_s=error_hold_s)


def load_kiosk_config(path: Path) -> NodeConfig:
    """The whole node config, validated, with the kiosk's own checks (kind, fonts)."""
    from edge.config import load_config

    cfg = load_config(path)
    if cfg.node.kind != "kiosk":
        raise KioskError(f"config {path}: node.kind is {cfg.node.kind!r}, not 'kiosk'")
    check_fonts(cfg.kiosk)
    return cfg


def window_settings(path: Path) -> WindowSettings | None:
    """The ``[kiosk]`` window settings straight from the TOML, nothing validated but them.

    None when they cannot be read that simply (an unreadable or invalid file, a node that is
    not a kiosk, a value of the wrong type, an environment override): the caller then
    validates the whole config before opening a window, and its error is the usual one.
    """
    from kiosk.app import WindowSettings

    if any(key.startswith(_EARLY_ENV) for key in os.environ):
        return None
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError):
        return None
    node, section = data.get("node"), data.get("kiosk", {})
    if not isinstance(node, dict) or node.get("kind") != "kiosk" or not isinstance(section, dict):
        return None
    kinds: dict[str, tuple[type, ...]] = {
        "fullscreen": (bool,),
        "width": (int,),
        "height": (int,),
        "font_cjk": (str,),
        "font_latin": (str,),
        "default_language": (str,),
    }
    values: dict[str, Any] = {}
    for key, kind in kinds.items():
        if key not in section:
            continue
        value = section[key]
        if not isinstance(value, kind) or (kind == (int,) and isinstance(value, bool)):
            return None
        values[key] = Path(str(value)) if key.startswith("font_") else value
    return WindowSettings(**values)


def run(cfg: NodeConfig) -> None:
    """The kiosk app with its node runtime, until the window closes."""
    from kiosk.app import KioskApp, configure_window

    finish_configure()
    configure_window(cfg.kiosk)
    KioskApp(cfg.kiosk, node=_node(cfg)).run()


def run_deferred(path: Path, early: WindowLike, *, error_hold_s: float = 15.0) -> None:
    """The kiosk's window first, then its config validated and its node started.

    A config refused after the window opened was shown there; it is raised here once the
    window has closed.
    """
    from kiosk.app import KioskApp, configure_window

    def setup() -> tuple[KioskSection, ConsultNode | None]:
        finish_configure()  # structlog, now that the window is up (machikado.logs)
        cfg = load_kiosk_config(path)
        return cfg.kiosk, _node(cfg)

    configure_window(early)
    kiosk = KioskApp.deferred(early, setup, error_hold_s=error_hold_s)
    kiosk.run()
    if kiosk.start_error is not None:
        raise kiosk.start_error


def _node(cfg: NodeConfig) -> ConsultNode:
    from kivy.clock import Clock

    from kiosk.node import KioskNode

    return KioskNode(cfg, dispatch=lambda fn: Clock.schedule_once(lambda _dt: fn()))


PackArgument = typer.Argument(..., help="The content pack file (YAML or JSON).")


@app.command("check-pack", cls=PlainCommand)
def check_pack(path: Path = PackArgument) -> None:
    """Check a content pack as the kiosk does before it shows one: every reason it would be
    refused, one per line, and exit status 2; or what it holds, and exit status 0."""
    from kiosk.content import ContentPack, check_pack_file, kiosk_languages

    languages = kiosk_languages()
    reasons = check_pack_file(path, languages=languages)
    if reasons:
        for reason in reasons:
            typer.echo(f"{path}: {reason}")
        typer.echo(f"{path}: refused, {len(reasons)} reason{'s' * (len(reasons) > 1)}", err=True)
        raise typer.Exit(2)
    pack = ContentPack.load(path, languages=languages)
    typer.echo(
        f"{path}: ok: {pack.id} revision {pack.revision}, {len(pack.items)} items, "
        f"languages {', '.join(pack.languages)}"
    )


@app.command(cls=PlainCommand)
def snapshot(out: Path = OutOption, config: Path | None = ConfigOption) -> None:
    """Render every screen in every language, plus large-text and high-contrast variants.

    ``--config`` gives fonts, triage protocol and content pack (default: the shipped ones).
    Files are ``<screen>-<lang>[-large][-contrast].png``; the kiosk's node is a stand-in that
    hands out a sample ticket and reply, so nothing is sent anywhere.
    """
    from edge.config import KioskSection, load_config

    settings = load_config(config).kiosk if config is not None else KioskSection()
    check_fonts(settings)
    written = render_snapshots(settings, out)
    typer.echo(f"{len(written)} screenshots in {out}")


def render_snapshots(settings: KioskSection, out: Path) -> list[Path]:
    """Render all snapshots into ``out``; the files written."""
    from kiosk.offscreen import use_offscreen

    use_offscreen(Path(tempfile.mkdtemp(prefix="machikado-kivy-")))
    from kiosk.app import KioskApp, configure_window
    from kiosk.offscreen import Offscreen

    configure_window(settings.model_copy(update={"fullscreen": False}))
    node = SampleNode()
    # The app's clock stands still unless a snapshot moves it: frames spent rendering must not
    # count as a resident's idle time or waiting time.
    kiosk = KioskApp(settings, node=node, clock=StillClock())
    node.app = kiosk
    written: list[Path] = []
    with Offscreen(kiosk) as k:
        for lang in kiosk.catalog.languages:
            for suffix, large, contrast in VARIANTS:
                for screen in walk_screens(kiosk, lang.code, large=large, contrast=contrast):
                    path = out / f"{screen}-{lang.code}{suffix}.png"
                    written.append(k.screenshot(path))
    log.info("kiosk_snapshots_written", count=len(written), out=str(out))
    return written


def walk_screens(kiosk: Any, lang: str, *, large: bool, contrast: bool) -> Iterator[str]:
    """Put the app into each screen's state in turn; yields the name to file it under."""
    from kiosk.triage import Tier, all_paths

    def fresh() -> None:
        kiosk.wipe()
        kiosk.start()
        kiosk.choose_language(lang)
        if large:
            kiosk.toggle_large()
        if contrast:
            kiosk.toggle_contrast()

    fresh()
    kiosk.manager.current = "attract"
    yield "attract"
    kiosk.go("language")
    yield "language"
    kiosk.go("home")
    yield "home"
    kiosk.begin_triage()
    yield "triage"
    first = kiosk.session.triage.current
    kiosk.answer(first.options[0].id)
    yield "emergency"
    # A path to green: the consultation most residents have.
    kiosk.begin_triage()
    green = next(p for p in all_paths(kiosk.protocol) if _tier_of(kiosk, p) is Tier.GREEN)
    for option in green:
        kiosk.answer(option)
    yield "result"
    kiosk.go("doctor")
    yield "doctor"
    kiosk.request_doctor()
    kiosk.clock.advance(272)  # as if the request left 4 min 32 s ago
    kiosk.idle.touch()
    kiosk._tick(0)
    yield "doctor_waiting"
    kiosk.node.reply_now()
    yield "doctor_reply"
    kiosk.request_doctor()
    kiosk.node.expire_now()
    yield "doctor_expired"
    kiosk.open_wizard()
    pack = kiosk.content.pack
    wizard = kiosk.screen("wizard")
    wizard.ids[f"who_{pack.who_tags[0]}"].state = "down"
    for tag in pack.what_tags[:2]:
        wizard.ids[f"what_{tag}"].state = "down"
    yield "wizard"
    kiosk.show_info(wizard.chosen("who"), wizard.chosen("what"))
    yield "info"
    # No touch for the idle time and 3 s more: the countdown shows 27 s left.
    kiosk.idle.touch()
    kiosk.clock.advance(kiosk.idle.current_idle_s + 3)
    kiosk._tick(0)
    yield "idle"


def _tier_of(kiosk: Any, path: list[str]) -> Any:
    from kiosk.triage import TriageSession

    session = TriageSession(kiosk.protocol)
    for option in path:
        session.answer(option)
    return session.outcome.tier if session.outcome else None


class StillClock:
    """A clock that moves only when told to (``advance``): snapshots show exact times."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


class SampleNode:
    """A stand-in for the kiosk's node in snapshots: a real ticket, a sample reply, no network."""

    def __init__(self) -> None:
        self.app: Any = None
        self._ticket: Any = None
        self._expired: Any = None

    def start(self) -> None:
        pass

    def stop(self) -> None:
        pass

    def wipe(self) -> None:
        self._ticket = None

    def on_reply(self, callback: Any) -> None:
        self._callback = callback

    def on_content_pack(self, callback: Any) -> None:
        pass

    def on_request_expired(self, callback: Any) -> None:
        self._expired = callback

    def request_consultation(self, request: dict[str, Any]) -> Any:
        from kiosk.consult import DEFAULT_CONSULT_URL, Ticket

        self._ticket = Ticket.new(consult_url=DEFAULT_CONSULT_URL)
        return self._ticket

    def expire_now(self) -> None:
        """The current request runs out unanswered."""
        self._expired(self._ticket)

    def reply_now(self) -> None:
        """Deliver a sample reply: the tier's advice, in the resident's language."""
        lang = self.app.lang
        self._callback(self._ticket, self.app.tr("tier.green.advice", lang), lang)

    def count_session(self, usage: Any) -> None:
        pass

    def declare_usage(self, dimension: str, values: Any) -> None:
        pass
