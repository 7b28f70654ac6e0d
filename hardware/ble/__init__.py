"""BLE through bleak: the radio, passive advert watching and self-healing GATT links.

Callers get bleak's own ``BleakScanner`` and ``BleakClient``, backed by BlueZ or by the
simulated radio of :mod:`hardware.sim`, so code above cannot tell them apart.

Additions to the agreed API (all optional, nothing renamed): ``Radio.open(..., world=)``,
``Radio.scanner(..., manufacturer_id=)``, ``watch_advertisements(..., backoff_min=,
backoff_max=, silence_restart_s=)``, ``GattLink(..., connect_timeout=)`` and
``GattLink.recent_delays``. ``read_on_connect`` defaults to None (meaning none) rather than
``{}``.

Example::

    radio = Radio.open("simulated")
    stop = asyncio.Event()
    await watch_advertisements(radio, on_advert, stop, manufacturer_id=0xFFFF)
"""

from hardware.ble.link import GattLink
from hardware.ble.radio import BACKENDS, Radio, manufacturer_pattern
from hardware.ble.watch import watch_advertisements

__all__ = ["BACKENDS", "GattLink", "Radio", "manufacturer_pattern", "watch_advertisements"]
