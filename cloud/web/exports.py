"""Tables as files: CSV for Excel, CSV for machines (open-data conventions), and JSON.

- ``excel``: UTF-8 with a BOM (Excel in Japanese opens UTF-8 without one as Shift_JIS and
  garbles it), CRLF line ends, no ``sep=`` line.
- ``csv``: UTF-8 without BOM, CRLF (RFC 4180), following the Digital Agency's conventions for
  open data: one value per cell, Western-calendar ISO 8601 dates and times with their offset,
  units in the header (``battery (%)``), no merged or decorative rows.
- ``json``: the rows as objects with stable English keys, times in ISO 8601.

A cell that starts with ``=``, ``+``, ``-``, ``@``, tab or CR gets a leading ``'`` in both CSV
kinds, so a spreadsheet never runs it as a formula (a node id or a name is text).

>>> table = Table([Column("node", "Node"), Column("battery_pct", "Battery", unit="%")],
...               [{"node": "rr-01", "battery_pct": 81.5}, {"node": "=1+1", "battery_pct": None}])
>>> excel_csv(table)[:3] == b"\\xef\\xbb\\xbf"
True
>>> plain_csv(table).decode()
"Node,Battery (%)\\r\\nrr-01,81.5\\r\\n'=1+1,\\r\\n"
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from fastapi.responses import Response

_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


@dataclass(frozen=True, slots=True)
class Column:
    """One column: its JSON key, its header (already translated) and unit."""

    key: str
    header: str
    unit: str = ""

    @property
    def title(self) -> str:
        return f"{self.header} ({self.unit})" if self.unit else self.header


@dataclass(frozen=True, slots=True)
class Table:
    columns: Sequence[Column]
    rows: Sequence[Mapping[str, Any]]


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, float):
        return repr(round(value, 6)).removesuffix(".0") if value.is_integer() else repr(value)
    text = str(value)
    if text.startswith(_FORMULA_START):
        return "'" + text
    return text


def _csv_text(table: Table) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow([_cell(c.title) for c in table.columns])
    for row in table.rows:
        writer.writerow([_cell(row.get(c.key)) for c in table.columns])
    return out.getvalue()


def plain_csv(table: Table) -> bytes:
    """UTF-8 without BOM, CRLF: for programs and open-data portals."""
    return _csv_text(table).encode("utf-8")


def excel_csv(table: Table) -> bytes:
    """UTF-8 with BOM, CRLF: opens right in Excel with Japanese text."""
    return b"\xef\xbb\xbf" + _csv_text(table).encode("utf-8")


def _json_value(value: Any) -> Any:
    if isinstance(value, datetime | date):
        return value.isoformat()
    return value


def json_rows(table: Table) -> list[dict[str, Any]]:
    return [{c.key: _json_value(row.get(c.key)) for c in table.columns} for row in table.rows]


#: The extensions a table page answers to, and what each is.
FORMATS = ("csv", "excel.csv", "json")


def table_response(table: Table, *, fmt: str, filename: str) -> Response:
    """The table as a download in ``fmt`` (one of :data:`FORMATS`)."""
    if fmt == "json":
        body = json.dumps({"rows": json_rows(table)}, ensure_ascii=False, indent=1).encode()
        return Response(body, media_type="application/json")
    if fmt == "excel.csv":
        body, name = excel_csv(table), f"{filename}-excel.csv"
    else:
        body, name = plain_csv(table), f"{filename}.csv"
    return Response(
        body,
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="{name}"'},
    )
