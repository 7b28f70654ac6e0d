"""UI test harness: each scenario runs the real Kivy app offscreen in a fresh subprocess.

Kivy allows one App per process, so a test calls ``run_scenario("module:function")``; the child
process (``drive``) sets up SDL's offscreen driver, builds the kiosk with a fake node and a fake
clock, and calls the scenario with a :class:`Kiosk` handle. An assertion failing inside the
child fails the test with the child's traceback.

``run_scenario(target, node_config=cfg)`` gives the app the real :class:`kiosk.node.KioskNode`
with that config instead (its runtime connects to a real broker); ``content_pack=path`` makes
the app use and watch that pack file; ``params`` reach the scenario as ``k.params``.
"""

from __future__ import annotations

import importlib
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

import pytest

from edge.config import NodeConfig
from kiosk.session import SessionUsage

ROOT = Path(__file__).resolve().parents[2]
#: A scenario child that has not finished by then prints its stacks and exits.
CHILD_TIMEOUT_S = 150

LANGS = ("ja", "ja-easy", "en", "zh-Hans", "ko", "vi")


def _t(*texts: str) -> dict[str, str]:
    return dict(zip(LANGS, texts, strict=True))


#: A small valid content pack, so the UI tests do not depend on the shipped sample's wording.
TEST_PACK = json.dumps(
    {
        "format": "machikado-content",
        "version": 1,
        "id": "ui-test",
        "revision": "1",
        "languages": list(LANGS),
        "who": {
            "parent_small_children": _t(
                "小さな子どもの親",
                "ちいさい こどもの おや",
                "Parent of small children",
                "幼儿家长",
                "어린 자녀의 부모",
                "Cha mẹ có con nhỏ",
            ),
            "elderly": _t(
                "高齢者", "おとしより", "Elderly person", "老年人", "노인", "Người cao tuổi"
            ),
        },
        "what": {
            "health": _t("健康", "けんこう", "Health", "健康", "건강", "Sức khỏe"),
            "waste": _t("ごみ", "ごみ", "Waste", "垃圾", "쓰레기", "Rác thải"),
        },
        "items": [
            {
                "id": "infant-checkups",
                "who": ["parent_small_children"],
                "what": ["health"],
                "priority": 1,
                "title": _t(
                    "乳幼児健診",
                    "あかちゃんの けんしん",
                    "Infant check-ups",
                    "婴幼儿体检",
                    "영유아 검진",
                    "Khám trẻ sơ sinh",
                ),
                "body": _t(
                    "無料です。",
                    "ただです。",
                    "Free at the health centre.",
                    "免费。",
                    "무료입니다.",
                    "Miễn phí.",
                ),
                "link": "https://example.org/checkups",
            },
            {
                "id": "flu-shots",
                "what": ["health"],
                "title": _t(
                    "インフルエンザ予防接種",
                    "インフルエンザの ちゅうしゃ",
                    "Flu shots",
                    "流感疫苗",
                    "독감 예방접종",
                    "Tiêm phòng cúm",
                ),
                "body": _t(
                    "助成があります。",
                    "おかねの たすけが あります。",
                    "The city helps pay.",
                    "有补贴。",
                    "지원이 있습니다.",
                    "Có hỗ trợ.",
                ),
                "link": "https://example.org/flu",
            },
            {
                "id": "bulky-waste",
                "what": ["waste"],
                "title": _t(
                    "粗大ごみ",
                    "おおきい ごみ",
                    "Bulky waste",
                    "大件垃圾",
                    "대형 폐기물",
                    "Rác cồng kềnh",
                ),
                "body": _t(
                    "予約が必要です。",
                    "よやくが ひつようです。",
                    "Book a pickup.",
                    "需要预约。",
                    "예약이 필요합니다.",
                    "Cần đặt lịch.",
                ),
                "link": "https://example.org/bulky",
            },
        ],
    },
    ensure_ascii=False,
)


class FakeClock:
    """The app's clock, moved by the scenario: idle timeouts without waiting."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


class WallClock:
    """The real node's usage clock (Unix seconds): real time, plus what the scenario added to
    end a usage period without waiting for it."""

    def __init__(self) -> None:
        self.offset = 0.0

    def __call__(self) -> float:
        return time.time() + self.offset

    def advance(self, seconds: float) -> None:
        self.offset += seconds


class FakeNode:
    """Stands in for kiosk.node.KioskNode: tickets from the real Ticket type, no network."""

    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []
        self.sessions: list[SessionUsage] = []
        self.declared: dict[str, list[str]] = {}
        self.callbacks: list[Callable[[Any, str, str], None]] = []
        self.expired_callbacks: list[Callable[[Any], None]] = []
        self.pack_callbacks: list[Callable[[bytes], None]] = []
        self.ticket: Any = None
        self.started = self.stopped = False
        self.wipes = 0

    def start(self) -> None:
        self.started = True

    def stop(self) -> None:
        self.stopped = True

    def wipe(self) -> None:
        self.wipes += 1
        self.ticket = None

    def on_reply(self, callback: Callable[[Any, str, str], None]) -> None:
        self.callbacks.append(callback)

    def on_request_expired(self, callback: Callable[[Any], None]) -> None:
        self.expired_callbacks.append(callback)

    def expire(self) -> None:
        """The current request ran out, as the real node reports it."""
        for callback in self.expired_callbacks:
            callback(self.ticket)

    def request_consultation(self, request: dict[str, Any]) -> Any:
        from kiosk.consult import DEFAULT_CONSULT_URL, Ticket

        self.requests.append(request)
        self.ticket = Ticket.new(consult_url=DEFAULT_CONSULT_URL)
        return self.ticket

    def reply(self, text: str, language: str = "en") -> None:
        for callback in self.callbacks:
            callback(self.ticket, text, language)

    def count_session(self, usage: Any) -> None:
        self.sessions.append(usage)

    def declare_usage(self, dimension: str, values: Any) -> None:
        self.declared[dimension] = list(values)

    def on_content_pack(self, callback: Callable[[bytes], None]) -> None:
        self.pack_callbacks.append(callback)


class Kiosk:
    """What a scenario gets: the running app, its node (fake or real) and clock, the driver,
    the test's ``params``, and the real node's usage clock (``wall``)."""

    def __init__(
        self,
        driver: Any,
        node: Any,
        clock: FakeClock,
        params: dict[str, Any] | None = None,
        wall: WallClock | None = None,
    ) -> None:
        self.driver = driver
        self.app = driver.app
        self.node = node
        self.clock = clock
        self.params = params or {}
        self.wall = wall or WallClock()

    def widget(self, screen: str, wid: str) -> Any:
        return self.app.screen(screen).ids[wid]

    def bar(self, wid: str) -> Any:
        return self.app.root.ids.bar.ids[wid]

    def tap(self, widget: Any) -> None:
        self.driver.tap(widget)

    def tap_id(self, screen: str, wid: str) -> None:
        self.driver.tap(self.widget(screen, wid))

    def wait_for_screen(self, name: str) -> None:
        self.driver.wait_until(lambda: self.app.manager.current == name)

    def texts(self) -> list[str]:
        texts: list[str] = self.app.screen(self.app.manager.current).texts()
        return texts


#: How often the app looks at its content pack file in UI tests (the kiosk's default is 3 s).
TEST_PACK_POLL_S = 0.1


def drive(target: str, home: str, options: str = "{}") -> None:
    """Child process: run the scenario ``module:function`` against an offscreen kiosk.

    ``options`` (JSON): ``node_config`` (a NodeConfig as JSON: the real KioskNode),
    ``content_pack`` (a pack file the app uses and watches), ``params`` (for the scenario).
    """
    import faulthandler

    # SDL turns SIGTERM into a quit event, so a hung child would outlive a timeout: dump every
    # thread's stack and exit instead.
    faulthandler.dump_traceback_later(CHILD_TIMEOUT_S, exit=True)
    from kiosk.offscreen import use_offscreen

    use_offscreen(Path(home))
    from kivy.clock import Clock

    from edge.config import KioskSection, NodeConfig
    from kiosk.app import KioskApp, configure_window
    from kiosk.content import ContentPack, ContentStore
    from kiosk.node import KioskNode
    from kiosk.offscreen import Offscreen

    opts: dict[str, Any] = json.loads(options)
    module, func = target.split(":")
    scenario = getattr(importlib.import_module(module), func)
    settings = KioskSection(
        idle_s=90,
        warning_s=30,
        tts_command=["true", "{voice}"],
        content_pack=opts.get("content_pack"),
    )
    configure_window(settings)
    clock = FakeClock()
    wall = WallClock()
    node: FakeNode | KioskNode
    if opts.get("node_config"):
        config = NodeConfig.model_validate_json(opts["node_config"])
        node = KioskNode(
            config, dispatch=lambda fn: Clock.schedule_once(lambda _dt: fn()), usage_clock=wall
        )
    else:
        node = FakeNode()
    content = None if settings.content_pack else ContentStore(ContentPack.load(TEST_PACK.encode()))
    app = KioskApp(settings, node=node, clock=clock, content=content, pack_poll_s=TEST_PACK_POLL_S)
    with Offscreen(app) as driver:
        if isinstance(node, KioskNode):
            assert node.running, "the app must start its node"
        scenario(Kiosk(driver, node, clock, opts.get("params"), wall))
    if isinstance(node, KioskNode):
        assert not node.running, "the app must stop its node"
    else:
        assert node.started, "the app must start its node"
        assert node.stopped, "the app must stop its node"


def _with_secret(config: NodeConfig) -> str:
    """The config as JSON for the child, its MQTT password included (a dump masks it)."""
    data = config.model_dump(mode="json")
    data["mqtt"]["password"] = config.mqtt.password.get_secret_value()
    return json.dumps(data)


class RunScenario(Protocol):
    def __call__(
        self,
        target: str,
        *,
        node_config: NodeConfig | None = None,
        content_pack: Path | None = None,
        params: dict[str, Any] | None = None,
    ) -> subprocess.CompletedProcess[str]: ...


@pytest.fixture
def run_scenario(tmp_path: Path) -> RunScenario:
    """Run a scenario in a fresh process; fails the test with its output if it failed."""

    def run(
        target: str,
        *,
        node_config: NodeConfig | None = None,
        content_pack: Path | None = None,
        params: dict[str, Any] | None = None,
    ) -> subprocess.CompletedProcess[str]:
        env = dict(os.environ, PYTHONPATH=str(ROOT))
        options = json.dumps(
            {
                "node_config": _with_secret(node_config) if node_config else None,
                "content_pack": str(content_pack) if content_pack else None,
                "params": params or {},
            }
        )
        code = (
            "import sys; from tests.kiosk.conftest import drive; "
            "drive(sys.argv[1], sys.argv[2], sys.argv[3])"
        )
        proc = subprocess.run(
            [sys.executable, "-c", code, target, str(tmp_path / "kivy"), options],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=CHILD_TIMEOUT_S + 30,
        )
        if proc.returncode != 0:
            pytest.fail(f"scenario {target} failed:\n{proc.stdout[-4000:]}\n{proc.stderr[-6000:]}")
        return proc

    return run
