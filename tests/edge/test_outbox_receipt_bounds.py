"""The outbox refuses a receipt range it cannot hold with its own error, and stays usable."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from edge.errors import OutboxError
from edge.outbox import Outbox
from protocol import Reading
from protocol.limits import INT64_MAX


@pytest.mark.parametrize("ranges", [[(1, 2**64)], [(1, INT64_MAX + 1)], [(2**70, 2**71)]])
def test_receipt_range_beyond_int64_is_an_outbox_error_and_changes_nothing(
    tmp_path: Path, ranges: list[tuple[int, int]]
) -> None:
    with Outbox(tmp_path / "outbox.sqlite", node="rr-01") as outbox:
        outbox.append(Reading(m="visit", at=datetime.now(UTC), fields={"n": 1}))
        assert outbox.commit() == [1]

        with pytest.raises(OutboxError, match="receipt range"):
            outbox.receipt(outbox.stream, ranges)

        assert outbox.stats().pending_rows == 1
        assert outbox.receipt(outbox.stream, [(1, INT64_MAX)]) == 1
        assert outbox.stats().pending_rows == 0
