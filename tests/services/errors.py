"""Errors of the test services: a broker or a store that cannot be started, reached or used."""

from __future__ import annotations

from protocol.errors import MachikadoError


class ServiceError(MachikadoError):
    """A real service (Mosquitto, InfluxDB) that is missing, did not come up, or refused a request.

    The message carries the service's own log tail, so a failing fixture says why.
    """
