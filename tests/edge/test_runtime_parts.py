"""Small parts of the runtime: backoff with jitter, the backlog's token bucket, systemd notify."""

from __future__ import annotations

import random
import socket
from pathlib import Path

from edge.link import backoff_delays
from edge.runtime import TokenBucket, sd_notify


def test_backoff_grows_to_its_ceiling_with_jitter() -> None:
    delays = backoff_delays(1.0, 16.0, random.Random(7))
    got = [next(delays) for _ in range(40)]
    assert all(1.0 <= d <= 16.0 for d in got)
    assert max(got[:3]) <= 4.0, "the first retries are quick"
    assert max(got[10:]) > 8.0, "later retries reach towards the ceiling"
    assert len(set(got)) == len(got), "jitter: no two nodes (or tries) wait the same"


def test_token_bucket_paces_the_backlog() -> None:
    bucket = TokenBucket(100.0, now=0.0)
    assert bucket.take(100, now=0.0)
    assert bucket.available(now=0.0) == 0.0
    assert not bucket.take(1, now=0.0), "an empty bucket gives nothing"
    assert bucket.available(now=0.5) == 50.0
    assert bucket.available(now=10.0) == 100.0, "the burst is one second's worth"


def test_sd_notify_reaches_systemds_socket(tmp_path: Path) -> None:
    path = tmp_path / "notify"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as server:
        server.bind(str(path))
        server.settimeout(5)
        assert sd_notify("READY=1", env={"NOTIFY_SOCKET": str(path)})
        assert server.recv(64) == b"READY=1"
    assert not sd_notify("READY=1", env={}), "outside systemd it does nothing"
