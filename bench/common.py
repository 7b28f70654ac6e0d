"""What every benchmark returns: a figure of ours next to the reference it is compared with."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Row:
    """One line of the benchmark table.

    ``ratio`` is ours over the reference for higher-is-better figures, and reference over ours
    otherwise, so a ratio above 1 always means we are better.
    """

    name: str
    ours: float
    unit: str
    reference: float | None = None
    reference_label: str = ""
    higher_is_better: bool = True
    target: str = ""

    @property
    def ratio(self) -> float | None:
        if self.reference is None or self.reference == 0 or self.ours == 0:
            return None
        return self.ours / self.reference if self.higher_is_better else self.reference / self.ours
