"""Talking to systemd from a ``Type=notify`` service with ``WatchdogSec``: no-ops elsewhere.

Light on purpose (standard library only), so that the kiosk can use it from its UI loop
without loading the MQTT stack first.

>>> sd_notify("READY=1", env={}), watchdog_interval(env={"WATCHDOG_USEC": "30000000"})
(False, 15.0)
"""

from __future__ import annotations

import os
import socket
from collections.abc import Mapping


def watchdog_interval(*, env: Mapping[str, str] | None = None) -> float:
    """How often to send ``WATCHDOG=1`` (half of ``WatchdogSec``), in seconds; 0.0 for never."""
    usec = (os.environ if env is None else env).get("WATCHDOG_USEC")
    return int(usec) / 2e6 if usec and usec.isdigit() else 0.0


def sd_notify(message: str, *, env: Mapping[str, str] | None = None) -> bool:
    """Tell systemd (Type=notify, WatchdogSec) how the service is; a no-op elsewhere."""
    addr = (os.environ if env is None else env).get("NOTIFY_SOCKET")
    if not addr:
        return False
    if addr.startswith("@"):
        addr = "\0" + addr[1:]
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        try:
            sock.connect(addr)
            sock.sendall(message.encode())
        except OSError:
            return False
    return True
