"""The collector's config: one TOML file, parsed once at start into typed frozen objects.

Sections: ``[mqtt]``, ``[store]``, ``[batch]``, ``[deadletter]``, ``[fleet]``, ``[retry]``,
``[status]`` (see :mod:`cloud.collector.settings` and :mod:`cloud.store.settings`). Every key can
be overridden by an environment variable ``MACHIKADO_<SECTION>__<KEY>``, e.g.
``MACHIKADO_STORE__URL``; the environment wins over the file. A bad file raises
:class:`~cloud.errors.ConfigError` naming each bad key.

>>> cfg = CollectorConfig.model_validate({"mqtt": {"shared_group": "g1"}})
>>> cfg.store.kind, cfg.batch.max_points, cfg.fleet.unknown_nodes
('sqlite', 10000, 'reject')
"""

from __future__ import annotations

from pathlib import Path

from cloud.collector.settings import (
    BatchSection,
    DeadLetterSection,
    FleetSection,
    MqttSection,
    RetrySection,
    StatusSection,
)
from cloud.errors import ConfigError
from cloud.store.settings import StoreSettings
from machikado.settings import FileSettings, load_settings


class CollectorConfig(FileSettings):
    """The whole collector config."""

    mqtt: MqttSection = MqttSection()
    store: StoreSettings = StoreSettings()
    batch: BatchSection = BatchSection()
    deadletter: DeadLetterSection = DeadLetterSection()
    fleet: FleetSection = FleetSection()
    retry: RetrySection = RetrySection()
    status: StatusSection = StatusSection()


def load_config(path: Path) -> CollectorConfig:
    """Read a collector config file, apply environment overrides, and validate it whole.

    Relative paths in the file (dead-letter store, manifest, SQLite store) stay relative to the
    working directory, as a systemd unit's ``WorkingDirectory`` sets it.
    """
    return load_settings(CollectorConfig, path, ConfigError)
