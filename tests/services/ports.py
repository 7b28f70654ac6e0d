"""Free TCP ports for services started by tests.

Ports are drawn at random below the kernel's ephemeral range, so that they do not collide with
the source ports of outgoing connections, and never handed out twice in one process. Another
process may still take a port between the check and the bind; the services retry on a fresh port
when their log says the address is in use.
"""

from __future__ import annotations

import random
import socket
import threading

#: Below Linux's default ephemeral range (32768-60999) and above well-known service ports.
PORT_RANGE = range(20000, 32768)

_handed_out: set[int] = set()
_lock = threading.Lock()


def is_port_free(port: int, host: str = "127.0.0.1") -> bool:
    """Whether a TCP listener could bind ``host:port`` right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def free_port(host: str = "127.0.0.1") -> int:
    """A port nobody listens on and this process has not handed out before.

    >>> port = free_port()
    >>> port in PORT_RANGE and is_port_free(port)
    True
    """
    rng = random.SystemRandom()
    with _lock:
        for _ in range(200):
            port = rng.choice(PORT_RANGE)
            if port not in _handed_out and is_port_free(port, host):
                _handed_out.add(port)
                return port
    raise OSError(f"no free TCP port on {host} in {PORT_RANGE.start}-{PORT_RANGE.stop - 1}")
