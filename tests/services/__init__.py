"""Real services for tests: the Mosquitto broker and the InfluxDB store, each on free ports.

The pytest fixtures that start them live in ``tests/conftest.py``; these classes can also be used
directly (benchmarks do), as context managers.
"""

from tests.services.clients import RecordingClient
from tests.services.errors import ServiceError
from tests.services.influxdb import InfluxFactory, InfluxServer
from tests.services.mosquitto import MosquittoFactory, MosquittoServer
from tests.services.ports import free_port

__all__ = [
    "InfluxFactory",
    "InfluxServer",
    "MosquittoFactory",
    "MosquittoServer",
    "RecordingClient",
    "ServiceError",
    "free_port",
]
