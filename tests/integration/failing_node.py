"""``machikado edge run`` with a fault put in: the outbox raises an unexpected error for every
receipt, as a bug or a broken disk would. Run as ``python -m tests.integration.failing_node edge
run --config PATH``; everything else is the real command.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

from edge.outbox import Outbox
from machikado.cli import main


def _receipt_fails(self: Outbox, stream: str, ranges: Sequence[tuple[int, int]]) -> int:
    raise RuntimeError("fault put in by the test: the outbox cannot apply a receipt")


if __name__ == "__main__":
    Outbox.receipt = _receipt_fails  # type: ignore[method-assign]
    sys.argv = ["machikado", *sys.argv[1:]]
    main()
