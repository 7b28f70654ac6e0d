"""A node's config: one TOML file, parsed once at start into typed frozen objects.

Every key can be overridden by an environment variable ``MACHIKADO_<SECTION>__<KEY>``, e.g.
``MACHIKADO_MQTT__PORT=8883``; the environment wins over the file. A bad file raises
:class:`~edge.errors.ConfigError` naming each bad key, never a traceback later.

>>> cfg = NodeConfig.model_validate({"node": {"id": "rr-01", "kind": "restroom"}})
>>> cfg.mqtt.port, cfg.outbox.when_full
(1883, 'drop_oldest')
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator

from edge.errors import ConfigError
from machikado.settings import (
    FileSettings,
    insecure_broker,
    is_loopback,
    load_settings,
    read_secret,
)
from protocol.limits import NODE_ID
from protocol.messages import NodeKind


class _Section(BaseModel):
    # hide_input_in_errors: an error must not repeat a password it was given.
    model_config = ConfigDict(frozen=True, extra="forbid", hide_input_in_errors=True)


class NodeSection(_Section):
    id: str = Field(description="Node id; also its MQTT username and topic level.")
    kind: NodeKind
    data_dir: Path = Field(default=Path("/var/lib/machikado"), description="Outbox and state.")

    @field_validator("id")
    @classmethod
    def _id(cls, v: str) -> str:
        if not NODE_ID.fullmatch(v):
            raise ValueError(
                f"{v!r} must match {NODE_ID.pattern} (it is an MQTT username and topic level)"
            )
        return v


class MqttSection(_Section):
    host: str = "localhost"
    port: int = Field(default=1883, ge=1, le=65535)
    username: str = Field(default="", description="Defaults to the node id; the ACL relies on it.")
    password: SecretStr = SecretStr("")
    #: A file holding the password, read at start; ``$CREDENTIALS_DIRECTORY/mqtt-password`` for
    #: the systemd credential the unit passes (see machikado.settings).
    password_file: Path | None = None
    #: Required for a broker that is not on the loopback, unless ``allow_insecure``.
    tls: bool = False
    #: Allow ``tls = false`` to a broker that is not on the loopback (a closed test network).
    allow_insecure: bool = False
    ca_file: Path | None = None
    cert_file: Path | None = None
    key_file: Path | None = None
    prefix: str = "machikado"
    protocol: Literal["auto", "5", "3.1.1"] = "auto"
    keepalive_s: int = Field(default=30, ge=5, le=3600)
    reconnect_min_s: float = Field(default=1.0, gt=0)
    reconnect_max_s: float = Field(default=60.0, gt=0)
    #: QoS 1 messages published but not yet acknowledged by the broker.
    max_inflight: int = Field(default=32, ge=1, le=65535)
    #: An envelope not covered by a receipt within this time is sent again.
    resend_after_s: float = Field(default=30.0, gt=0)
    #: Readings per second a backlog drains at, on top of live readings.
    backlog_rate: float = Field(default=5000.0, gt=0)

    @model_validator(mode="after")
    def _backoff(self) -> MqttSection:
        if self.reconnect_max_s < self.reconnect_min_s:
            raise ValueError("reconnect_max_s is smaller than reconnect_min_s")
        if self.password.get_secret_value() and self.password_file:
            raise ValueError("give password or password_file, not both")
        if not self.tls and not self.allow_insecure and not is_loopback(self.host):
            raise ValueError(insecure_broker(self.host))
        return self

    def secret(self) -> SecretStr:
        """The password: read from ``password_file`` when one is given (raises SecretFileError)."""
        if self.password_file is not None:
            return read_secret(self.password_file, key="mqtt.password_file")
        return self.password


class OutboxSection(_Section):
    path: Path | None = Field(default=None, description="Defaults to <data_dir>/outbox.sqlite.")
    #: Readings appended within this window share one commit (and one fsync): SD cards wear.
    commit_window_ms: int = Field(default=200, ge=0, le=60_000)
    readings_per_envelope: int = Field(default=100, ge=1, le=500)
    #: Bound on readings held; when reached, ``when_full`` decides, and it is counted.
    max_readings: int = Field(default=1_000_000, ge=1)
    when_full: Literal["drop_oldest", "drop_newest", "refuse"] = "drop_oldest"


class GpioSection(_Section):
    #: "" means GPIOZERO_PIN_FACTORY, then gpiozero's auto-detection; "mock" simulates pins.
    pin_factory: Literal["", "mock", "lgpio", "rpigpio", "pigpio", "native"] = ""


class BleSection(_Section):
    backend: Literal["bleak", "simulated"] = "bleak"
    adapter: str = "hci0"


class SimulationSection(_Section):
    """Simulated sensors for demos and tests: mock pins and a simulated radio, by scenario."""

    enabled: bool = False
    seed: int = 1
    #: Scenario time runs this many times faster than the wall clock.
    speed: float = Field(default=1.0, gt=0)
    #: Synthetic ``synthetic`` readings per second, on top of the agents (benchmarks, soak tests).
    synthetic_rate: float = Field(default=0.0, ge=0)
    #: Stop the synthetic readings after this many; 0 means never.
    synthetic_count: int = Field(default=0, ge=0)


class HealthSection(_Section):
    interval_s: float = Field(default=60.0, gt=0)


class StallSection(_Section):
    name: str
    door_pin: int | str
    #: The door switch reads active (pulled low by the closed contact) when the door is closed.
    door_closed_when_active: bool = True
    pir_pin: int | str | None = None


class HealthDeviceSection(_Section):
    address: str
    kind: Literal["scale", "blood_pressure", "thermometer"]


class RestroomSection(_Section):
    stalls: list[StallSection] = Field(default_factory=list)
    help_button_pin: int | str | None = None
    occupancy_interval_s: float = Field(default=300.0, gt=0)
    health_devices: list[HealthDeviceSection] = Field(default_factory=list)


class MobilitySection(_Section):
    vehicle_id: int = Field(default=0, ge=0, le=0xFFFFFFFF)
    wheel_circumference_mm: float = Field(default=2100.0, gt=0)
    #: BLE address of the vehicle's sensor hub (battery, CSC, location and speed); "" for none.
    gatt_address: str = ""
    #: GPIO pin of a hall sensor counting wheel pulses, instead of CSC; None for none.
    hall_pin: int | str | None = None
    pulses_per_revolution: int = Field(default=1, ge=1)
    #: Positions are rounded to a grid of this many metres for privacy; 0 keeps them exact.
    coarsen_m: float = Field(default=0.0, ge=0)
    #: No wheel movement for this long ends a trip.
    trip_idle_s: float = Field(default=120.0, gt=0)
    sample_interval_s: float = Field(default=5.0, gt=0)


class StationSection(_Section):
    manufacturer_id: int = Field(default=0xFFFF, ge=0, le=0xFFFF)
    report_interval_s: float = Field(default=60.0, gt=0)
    #: A vehicle not heard for this long is reported as gone.
    stale_after_s: float = Field(default=300.0, gt=0)


class KioskSection(_Section):
    """The resident kiosk: window, fonts, idle timing, read-aloud, protocol and content files."""

    #: Fullscreen on the Pi's touch screen; a desktop window otherwise.
    fullscreen: bool = False
    width: int = Field(default=1280, ge=320, le=7680)
    height: int = Field(default=800, ge=240, le=4320)
    #: Japanese, Chinese and Korean text; Debian's and Raspberry Pi OS's fonts-noto-cjk.
    font_cjk: Path = Path("/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc")
    #: English and Vietnamese (needs Vietnamese diacritics); fonts-dejavu-core.
    font_latin: Path = Path("/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf")
    default_language: str = "ja"
    #: No touch for this long shows the countdown ...
    idle_s: float = Field(default=90.0, gt=0)
    #: ... which wipes the session after this long unless someone asks for more time.
    warning_s: float = Field(default=30.0, gt=0)
    #: The read-aloud command, no shell involved: ``{voice}`` is replaced, the text goes to its
    #: stdin (never an argument, which other users could read in /proc).
    tts_command: list[str] = Field(
        default_factory=lambda: ["espeak-ng", "-v", "{voice}", "--stdin"]
    )
    #: None means the shipped sample (not clinically reviewed): a city replaces it.
    triage_protocol: Path | None = None
    #: None means the shipped sample content pack.
    content_pack: Path | None = None
    #: The consultation service's X25519 public key, base64; requests are sealed to it.
    consult_public_key: str = ""
    #: Where a phone fetches the doctor's answer: the QR code shows ``<consult_url><ticket>#c=``
    #: (the code in the fragment, which browsers never send to the server).
    consult_url: str = "https://consult.example.org/t/"
    #: A consultation request not answered within this long runs out: the node stops sending
    #: it, drops it from the outbox, and the screen says so.
    consult_ttl_s: float = Field(default=1800.0, gt=0, le=7 * 86400)
    #: Usage counts are sent per period of this many seconds (a divisor of a day; kiosk.usage).
    usage_period_s: int = Field(default=3600, ge=60, le=86400)
    #: A usage count below this is sent as "<k", never as its value.
    usage_min_count: int = Field(default=5, ge=2, le=1000)

    @field_validator("usage_period_s")
    @classmethod
    def _usage_period(cls, v: int) -> int:
        if 86400 % v:
            raise ValueError(f"{v} does not divide a day (86400 s) evenly, e.g. 900, 3600")
        return v

    @field_validator("tts_command")
    @classmethod
    def _tts(cls, v: list[str]) -> list[str]:
        if not v:
            raise ValueError(
                "needs at least the program to run, e.g. ['espeak-ng', '-v', '{voice}', '--stdin']"
            )
        if any("{text}" in part for part in v):
            raise ValueError(
                "the text is written to the command's stdin, never put into an argument (other "
                "users see arguments in /proc, and a text starting with '-' would be an option): "
                "remove {text}; espeak-ng reads stdin with --stdin"
            )
        return v


class NodeConfig(FileSettings):
    """The whole node config."""

    node: NodeSection
    mqtt: MqttSection = MqttSection()
    outbox: OutboxSection = OutboxSection()
    gpio: GpioSection = GpioSection()
    ble: BleSection = BleSection()
    simulation: SimulationSection = SimulationSection()
    health: HealthSection = HealthSection()
    restroom: RestroomSection = RestroomSection()
    mobility: MobilitySection = MobilitySection()
    station: StationSection = StationSection()
    kiosk: KioskSection = KioskSection()

    @property
    def mqtt_username(self) -> str:
        return self.mqtt.username or self.node.id

    @property
    def outbox_path(self) -> Path:
        return self.outbox.path or self.node.data_dir / "outbox.sqlite"

    def digest(self) -> str:
        """SHA-256 of the effective config (secrets left out), announced in the node's birth."""
        data = self.model_dump(mode="json", exclude={"mqtt": {"password"}})
        return hashlib.sha256(repr(sorted(_flatten(data))).encode()).hexdigest()


def _flatten(data: Any, prefix: str = "") -> list[tuple[str, str]]:
    if isinstance(data, dict):
        return [kv for k, v in data.items() for kv in _flatten(v, f"{prefix}{k}.")]
    return [(prefix.rstrip("."), repr(data))]


def load_config(path: Path) -> NodeConfig:
    """Read a node config file, apply environment overrides, and validate it whole."""
    return load_settings(NodeConfig, path, ConfigError)
