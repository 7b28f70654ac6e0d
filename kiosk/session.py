"""One resident's session at the kiosk, and the idle timer that ends it.

Everything the kiosk knows about the person in front of it lives in one
:class:`KioskSession`; :meth:`KioskSession.wipe` returns it to exactly the state of a fresh
one. :class:`IdleTimer` decides when that happens: after ``idle_s`` without a touch a warning
counts down ``warning_s`` seconds, then the session expires and is wiped. Both are pure and
clocked by an injected clock (``time.monotonic`` by default), so tests drive time themselves.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from kiosk.errors import KioskError

if TYPE_CHECKING:
    # Imported at the first interview: the kiosk's first frame (the attract screen) needs
    # no triage engine.
    from kiosk.triage import Tier, TriageProtocol, TriageSession

Clock = Callable[[], float]
Phase = Literal["active", "warning", "expired"]


@dataclass(frozen=True, slots=True)
class SessionUsage:
    """What one finished session adds to the kiosk's usage counts (:mod:`kiosk.usage`).

    >>> SessionUsage(language="en", info_categories=frozenset({"waste"})).consult_requested
    False
    """

    language: str | None = None
    #: The most urgent tier the session reached; None without a finished interview.
    tier: str | None = None
    consult_requested: bool = False
    info_categories: frozenset[str] = field(default_factory=frozenset)
    large_text: bool = False
    high_contrast: bool = False


class KioskSession:
    """Everything of the one resident using the kiosk now; ``wipe()`` forgets all of it.

    >>> t = [100.0]
    >>> s = KioskSession(clock=lambda: t[0])
    >>> s.visit("language"); s.language = "en"; s.visit("home")
    >>> t[0] = 142.5
    >>> s.duration_s(), s.usage().language
    (42.5, 'en')
    >>> s.wipe(); s.language is None and s.screens == []
    True
    """

    # Attributes, all (re)set in _fresh(); listed here for the type checker and the reader.
    language: str | None
    large_text: bool
    high_contrast: bool
    more_time: bool
    screens: list[str]
    started_at: float | None
    triage: TriageSession | None
    tier_reached: Tier | None
    consult_requested: bool
    #: The consultation ticket (K3's object: number, one-time code); dropped by wipe().
    ticket: Any | None
    #: The doctor's reply text once it arrived.
    reply: str | None
    scroll: dict[str, float]
    wizard_who: set[str]
    wizard_what: set[str]
    info_categories: list[str]
    items_viewed: list[str]

    def __init__(self, *, clock: Clock = time.monotonic) -> None:
        self._clock = clock
        self._fresh()

    def _fresh(self) -> None:
        self.language = None
        self.large_text = False
        self.high_contrast = False
        self.more_time = False
        self.screens = []
        self.started_at = None
        self.triage = None
        self.tier_reached = None
        self.consult_requested = False
        self.ticket = None
        self.reply = None
        self.scroll = {}
        self.wizard_who = set()
        self.wizard_what = set()
        self.info_categories = []
        self.items_viewed = []

    def wipe(self) -> None:
        """Forget everything of this resident: afterwards the session equals a fresh one."""
        clock = self._clock
        # Clearing the dict also drops any attribute a screen may have added on the side.
        self.__dict__.clear()
        self._clock = clock
        self._fresh()

    @property
    def is_fresh(self) -> bool:
        """Whether nobody has used this session since it was created or wiped."""
        return vars(self) == vars(KioskSession(clock=self._clock))

    @property
    def started(self) -> bool:
        """Whether a resident has started using the kiosk."""
        return self.started_at is not None

    def start(self) -> None:
        """Mark the session as begun (a touch on the attract screen); idempotent."""
        if self.started_at is None:
            self.started_at = self._clock()

    def visit(self, screen: str) -> None:
        """Record that ``screen`` is shown now (repeats of the same screen count once)."""
        self.start()
        if not self.screens or self.screens[-1] != screen:
            self.screens.append(screen)

    def start_triage(self, protocol: TriageProtocol) -> TriageSession:
        """Begin a new interview, replacing any earlier one of this resident."""
        from kiosk.triage import TriageSession

        self.start()
        self.triage = TriageSession(protocol)
        return self.triage

    def note_outcome(self) -> Tier | None:
        """Remember the tier of the finished interview for the usage summary; the tier."""
        if self.triage is not None and self.triage.outcome is not None:
            tier = self.triage.outcome.tier
            if self.tier_reached is None or tier.urgency > self.tier_reached.urgency:
                self.tier_reached = tier
        return self.tier_reached

    def view_info(self, categories: set[str] | list[str], item_id: str | None = None) -> None:
        """Record that information of these ``what`` categories (and this item) was shown."""
        self.start()
        for cat in sorted(categories):
            if cat not in self.info_categories:
                self.info_categories.append(cat)
        if item_id is not None and item_id not in self.items_viewed:
            self.items_viewed.append(item_id)

    def set_scroll(self, screen: str, position: float) -> None:
        """Remember a screen's scroll position (restored when the resident comes back)."""
        self.scroll[screen] = position

    def duration_s(self) -> float:
        """Seconds since the session started (0 if it has not)."""
        if self.started_at is None:
            return 0.0
        return max(0.0, self._clock() - self.started_at)

    def usage(self) -> SessionUsage:
        """What this session adds to the kiosk's usage counts (:mod:`kiosk.usage`): language,
        most urgent tier, whether a doctor was asked, categories viewed, display switches.
        Nothing else of it leaves the kiosk: no answers, screens, times, ticket or reply."""
        self.note_outcome()
        return SessionUsage(
            language=self.language,
            tier=self.tier_reached.value if self.tier_reached else None,
            consult_requested=self.consult_requested,
            info_categories=frozenset(self.info_categories),
            large_text=self.large_text,
            high_contrast=self.high_contrast,
        )


@dataclass(frozen=True, slots=True)
class IdleState:
    """Where the idle timer stands: ``phase`` and whole ``seconds_left`` until the wipe."""

    phase: Phase
    seconds_left: int

    @property
    def is_active(self) -> bool:
        return self.phase == "active"

    @property
    def is_warning(self) -> bool:
        return self.phase == "warning"

    @property
    def is_expired(self) -> bool:
        return self.phase == "expired"


class IdleTimer:
    """When to warn and when to wipe: active -> warning countdown -> expired.

    After ``idle_s`` seconds without :meth:`touch` the warning shows for ``warning_s`` seconds
    (``seconds_left`` counts down to 0); then the state is expired. :meth:`more_time` is the
    resident asking for more time: it counts as a touch and, until :meth:`reset`, makes every
    idle period ``more_time_factor`` times longer.

    >>> t = [0.0]
    >>> idle = IdleTimer(90, 30, clock=lambda: t[0])
    >>> t[0] = 100.2; idle.state()
    IdleState(phase='warning', seconds_left=20)
    >>> t[0] = 120.0; idle.state().phase
    'expired'
    >>> idle.more_time(); t[0] = 290.0; idle.state().phase
    'active'
    """

    def __init__(
        self,
        idle_s: float,
        warning_s: float,
        clock: Clock = time.monotonic,
        *,
        more_time_factor: float = 2.0,
    ) -> None:
        if not idle_s > 0:
            raise KioskError(f"idle_s must be more than 0, got {idle_s}")
        if not warning_s > 0:
            raise KioskError(f"warning_s must be more than 0, got {warning_s}")
        if not more_time_factor >= 1:
            raise KioskError(f"more_time_factor must be 1 or more, got {more_time_factor}")
        self.idle_s = float(idle_s)
        self.warning_s = float(warning_s)
        self.more_time_factor = float(more_time_factor)
        self._clock = clock
        self._extended = False
        self._last = clock()

    @property
    def current_idle_s(self) -> float:
        """The idle period in force now (longer after :meth:`more_time`)."""
        return self.idle_s * (self.more_time_factor if self._extended else 1.0)

    @property
    def extended(self) -> bool:
        """Whether the resident asked for more time since the last reset."""
        return self._extended

    def touch(self, now: float | None = None) -> None:
        """The resident did something: the idle period starts again."""
        self._last = self._clock() if now is None else now

    def more_time(self, now: float | None = None) -> None:
        """The resident asked for more time: a touch, and longer idle periods from now on."""
        self._extended = True
        self.touch(now)

    def reset(self, now: float | None = None) -> None:
        """Back to the normal idle period, starting now (after a wipe)."""
        self._extended = False
        self.touch(now)

    def state(self, now: float | None = None) -> IdleState:
        """The phase at ``now`` (default: the clock) and whole seconds left until the wipe."""
        at = self._clock() if now is None else now
        elapsed = max(0.0, at - self._last)
        idle = self.current_idle_s
        left = idle + self.warning_s - elapsed
        if left <= 0:
            return IdleState("expired", 0)
        phase: Phase = "active" if elapsed < idle else "warning"
        return IdleState(phase, math.ceil(left))
