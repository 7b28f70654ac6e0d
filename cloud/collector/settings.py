"""The collector's config sections: mqtt, batch, deadletter, fleet, retry and status.

They are frozen and forbid unknown keys; :mod:`cloud.config` puts them together with the store's
section into the whole config file.

>>> MqttSection().subscriptions()
['machikado/v1/+/data', 'machikado/v1/+/birth', 'machikado/v1/+/state']
>>> MqttSection(shared_group="g1").subscriptions()[0]
'$share/g1/machikado/v1/+/data'
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator

from cloud.deadletter import DEFAULT_POLICY as _DL
from cloud.deadletter import Policy
from machikado.settings import insecure_broker, is_loopback, read_secret
from protocol.topics import Topics


class _Section(BaseModel):
    # hide_input_in_errors: an error must not repeat a password it was given.
    model_config = ConfigDict(frozen=True, extra="forbid", hide_input_in_errors=True)


class MqttSection(_Section):
    """How the collector reaches the broker, and its persistent session."""

    host: str = "localhost"
    port: int = Field(default=1883, ge=1, le=65535)
    username: str = ""
    password: SecretStr = SecretStr("")
    #: A file holding the password, read at start; ``$CREDENTIALS_DIRECTORY/mqtt-password`` for
    #: the systemd credential the unit passes (see machikado.settings).
    password_file: Path | None = None
    #: Required for a broker that is not on the loopback, unless ``allow_insecure``.
    tls: bool = False
    #: Allow ``tls = false`` to a broker that is not on the loopback (a closed test network).
    allow_insecure: bool = False
    ca_file: Path | None = None
    prefix: str = "machikado"
    client_id: str = Field(default="machikado-collector", min_length=1, max_length=128)
    #: "5", or "3.1.1" for a broker without MQTT 5 (amqtt, the demo's embedded broker): then the
    #: session is clean_session=False, and ``max_inflight`` bounds the collector's own queue
    #: (paho's thread waits, so TCP holds the broker back) instead of Receive Maximum.
    protocol: Literal["5", "3.1.1"] = "5"
    #: Non-empty: data is subscribed through ``$share/<group>/...``, split between collectors.
    shared_group: str = ""
    #: How long the broker keeps the session (and queues messages) while the collector is away.
    session_expiry_s: int = Field(default=86400, ge=1, le=0xFFFFFFFF)
    keepalive_s: int = Field(default=30, ge=5, le=3600)
    #: Received but unacked messages at most: MQTT 5 Receive Maximum, so the broker holds back.
    #: Room for about two full batches beside the one being written, so receiving never waits
    #: for a write; what the collector holds is at most this many payloads.
    max_inflight: int = Field(default=2000, ge=1, le=65535)
    reconnect_min_s: float = Field(default=0.5, gt=0)
    reconnect_max_s: float = Field(default=10.0, gt=0)

    @field_validator("prefix")
    @classmethod
    def _prefix(cls, v: str) -> str:
        Topics(v)  # raises InvalidTopic, a ValueError pydantic reports with the key
        return v

    @field_validator("shared_group")
    @classmethod
    def _group(cls, v: str) -> str:
        if any(c in v for c in "/+#"):
            raise ValueError(f"{v!r}: a shared subscription group may not hold / + or #")
        return v

    @model_validator(mode="after")
    def _secrets(self) -> MqttSection:
        if self.password.get_secret_value() and self.password_file:
            raise ValueError("give password or password_file, not both")
        if self.reconnect_max_s < self.reconnect_min_s:
            raise ValueError("reconnect_max_s is smaller than reconnect_min_s")
        if not self.tls and not self.allow_insecure and not is_loopback(self.host):
            raise ValueError(insecure_broker(self.host))
        return self

    @property
    def topics(self) -> Topics:
        return Topics(self.prefix)

    def data_filter(self) -> str:
        data = self.topics.every("data")
        return f"$share/{self.shared_group}/{data}" if self.shared_group else data

    def subscriptions(self) -> list[str]:
        """Data (shared when a group is set), then births and states (never shared).

        Births and states are retained, and a broker sends retained messages to a new
        subscription only when it is not shared (MQTT 5, 4.8.2): through ``$share`` a collector
        started after a node would never learn the node's birth. So every collector subscribes
        to them on its own; they are few, and ``fleet_state`` keeps the newest anyway.
        """
        return [self.data_filter(), self.topics.every("birth"), self.topics.every("state")]

    def secret(self) -> SecretStr:
        """The password: read from ``password_file`` when one is given (raises SecretFileError)."""
        if self.password_file is not None:
            return read_secret(self.password_file, key="mqtt.password_file")
        return self.password


class BatchSection(_Section):
    """How batches form: whatever came while the last write ran, bounded by these.

    The writer takes everything checked so far the moment it is free (a group commit), so a
    lone message is written at once and batches grow with the load by themselves.
    """

    #: A batch is handed to the writer when it holds this many points (counted from the
    #: readings in its messages), even if more are queued. InfluxDB's guidance is 5,000 to
    #: 10,000 points per write.
    max_points: int = Field(default=10_000, ge=1, le=1_000_000)
    #: Check and write batches in a second process, so that receiving and storing use two
    #: cores (see :mod:`cloud.collector.checking`); false: all in one process.
    check_process: bool = True
    #: Upper bound on how long a batch stays open once the writer is free for it.
    max_delay_ms: int = Field(default=200, ge=0, le=60_000)
    #: How long a free writer waits for one more message before it writes what it has; 0
    #: (the default) writes at once. More trades latency for fewer, larger writes at low load.
    idle_ms: int = Field(default=0, ge=0, le=60_000)
    #: On SIGTERM, how long to keep retrying a store that is down before leaving the batch
    #: unacked to the broker (it redelivers it to the next collector).
    drain_timeout_s: float = Field(default=30.0, ge=0)
    #: Seconds between the collector's summary log lines.
    summary_interval_s: float = Field(default=30.0, gt=0)


class StatusSection(_Section):
    """The status file (see :mod:`cloud.collector.status`); no ``path``, no file."""

    path: Path | None = None
    interval_s: float = Field(default=1.0, gt=0, le=3600)


class DeadLetterSection(_Section):
    """Where refused messages are kept, and how much of them (:class:`~cloud.deadletter.Policy`:
    per record, per node's rate, in total; what is not kept in full is counted)."""

    path: Path = Path("var/cloud/deadletter.sqlite")
    max_payload_bytes: int = Field(default=_DL.max_payload_bytes, ge=0)
    max_reasons: int = Field(default=_DL.max_reasons, ge=1)
    max_reason_chars: int = Field(default=_DL.max_reason_chars, ge=16)
    rate_per_minute: float = Field(default=_DL.rate_per_minute, ge=0)
    burst: int = Field(default=_DL.burst, ge=1)
    brief_payload_bytes: int = Field(default=_DL.brief_payload_bytes, ge=0)
    brief_reasons: int = Field(default=_DL.brief_reasons, ge=1)
    max_records: int = Field(default=_DL.max_records, ge=10)
    max_bytes: int = Field(default=_DL.max_bytes, ge=65_536)

    def policy(self) -> Policy:
        return Policy(**self.model_dump(exclude={"path"}))


class FleetSection(_Section):
    manifest: Path = Path("firmware_config/fleet.toml")
    #: A node the manifest does not list: dead-letter its messages ("unknown node") or store
    #: them with trial and site "unassigned".
    unknown_nodes: Literal["reject", "accept"] = "reject"


class RetrySection(_Section):
    """Backoff while the store is unavailable: exponential from ``initial_s`` up to ``max_s``."""

    initial_s: float = Field(default=0.5, gt=0)
    max_s: float = Field(default=30.0, gt=0)

    @model_validator(mode="after")
    def _order(self) -> RetrySection:
        if self.max_s < self.initial_s:
            raise ValueError("max_s is smaller than initial_s")
        return self
