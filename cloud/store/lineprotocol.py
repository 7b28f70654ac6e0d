"""InfluxDB line protocol that reads back exactly what was written, on 1.x as on 2.x.

One point per line: ``measurement[,tag=value...] field=value[,field=value...] time_ns``.
Escaping follows the parser of InfluxDB 1.x (``models/points.go``), which Debian's 1.6.7 runs:

- measurement: ``,`` and space get a backslash; tag keys and values: ``,``, ``=`` and space.
  Any other backslash is literal (1.x does not unescape ``\\\\`` there).
- string fields are double-quoted; ``"`` and ``\\`` get a backslash. A newline is written as it
  is: the parser keeps reading a quoted string across lines.
- integers get ``i`` and must fit in int64; floats are written with ``repr`` (the shortest text
  that parses back to the same double) and must be finite; booleans are ``true``/``false``.

What 1.x cannot carry is refused with a reason instead of being stored corrupted. The parser
takes a separator as escaped whenever the byte before it is a backslash, so **a name or tag
value ending in a backslash** can never be terminated: written plainly the point fails to parse,
and the usual workaround (``influxdb-client`` appends a space) stores ``"x "`` for ``"x\\"``. No
escape turns a final byte into a backslash, so there is no encoding; such points are rejected.
Also refused: control characters outside string fields (1.x has no escape for a newline, and
InfluxQL cannot name NUL, CR and the like); a measurement starting with ``#`` (a comment line)
or holding a backslash anywhere (1.6.7 files it under another name); backslashes in tag and
field keys (the line splitter pairs them with the next byte and loses its place); ``time`` as a
tag or field key (1.x drops it); NaN and infinities; integers beyond int64; times outside the
range InfluxDB stores.

>>> encode_point(Point("visit", {"node": "rr 01"}, {"n": 3, "ok": True, "s": 'a"b'}, 5))
'visit,node=rr\\\\ 01 n=3i,ok=true,s="a\\\\"b" 5'
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Iterator, Mapping
from functools import lru_cache
from typing import Any

from cloud.errors import PointsRejected
from cloud.store.base import FieldValue, Point
from protocol.limits import INT64_MAX, INT64_MIN

#: The earliest and latest times InfluxDB stores (``models.MinNanoTime``/``MaxNanoTime``).
MIN_TIME_NS = -9_223_372_036_854_775_806
MAX_TIME_NS = 9_223_372_036_854_775_806
#: InfluxDB's limit on measurement + tags + one field key, in bytes.
MAX_KEY_BYTES = 65_535

_MEASUREMENT_ESCAPES = str.maketrans({",": "\\,", " ": "\\ "})
_TAG_ESCAPES = str.maketrans({",": "\\,", " ": "\\ ", "=": "\\="})
_STRING_ESCAPES = str.maketrans({"\\": "\\\\", '"': '\\"'})
_RESERVED_KEY = "time"
#: C0 controls and DEL: a newline ends the line; InfluxQL cannot name the others (it reads
#: NUL as the end of the query and refuses \r in identifiers).
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def _describe(point: Point) -> str:
    return f"point {point.measurement!r} {dict(point.tags)!r} at {point.time_ns}"


def _name_problems(what: str, name: str) -> list[str]:
    problems: list[str] = []
    control = _CONTROL.search(name)
    if control:
        problems.append(
            f"{what} {name!r} holds control character U+{ord(control[0]):04X}, which line"
            " protocol (newline) or InfluxQL (the others) cannot carry"
        )
    if name.endswith("\\"):
        problems.append(
            f"{what} {name!r} ends in a backslash, which InfluxDB 1.x line protocol cannot carry"
            " (the separator after it reads as escaped)"
        )
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        problems.append(f"{what} {name!r} is not valid Unicode text (lone surrogate)")
    return problems


def _key_problems(what: str, key: str) -> list[str]:
    problems = _name_problems(what, key)
    if key == _RESERVED_KEY:
        problems.append(f"{what} 'time' is reserved by InfluxDB (it would be dropped)")
    if "\\" in key:
        problems.append(f"{what} {key!r} holds a backslash, which InfluxDB 1.x misreads in keys")
    return problems


# Names and tag values repeat from point to point (node, site, trial): each is checked and
# escaped once. Type and emptiness are point_problems' to report; these take non-empty text.


@lru_cache(maxsize=4096)
def _measurement(m: str) -> tuple[tuple[str, ...], str]:
    problems = _name_problems("measurement", m)
    if "\\" in m and not m.endswith("\\"):
        # 1.6.7 keeps the series but names the measurement differently (SHOW MEASUREMENTS
        # drops or doubles the backslash), so no query finds it under its name.
        problems.append(
            f"measurement {m!r} holds a backslash, which InfluxDB 1.x does not store faithfully"
        )
    if m.startswith("#"):
        problems.append(f"measurement {m!r} starts with '#', which makes the line a comment")
    return tuple(problems), m.translate(_MEASUREMENT_ESCAPES)


@lru_cache(maxsize=4096)
def _tag_key(key: str) -> tuple[tuple[str, ...], str]:
    return tuple(_key_problems("tag key", key)), key.translate(_TAG_ESCAPES)


@lru_cache(maxsize=65536)
def _tag_value(key: str, value: str) -> tuple[tuple[str, ...], str]:
    return tuple(_name_problems(f"tag {key!r} value", value)), value.translate(_TAG_ESCAPES)


@lru_cache(maxsize=4096)
def _field_key(key: str) -> tuple[tuple[str, ...], str]:
    return tuple(_key_problems("field key", key)), key.translate(_TAG_ESCAPES)


def field_value_problems(key: str, value: object) -> list[str]:
    """Why a field value cannot be stored, or nothing: types, int64 range, finite floats.

    >>> field_value_problems("n", 2**63)
    ['field n: integer 9223372036854775808 does not fit in int64']
    """
    if isinstance(value, bool):
        return []
    if isinstance(value, int):
        if not INT64_MIN <= value <= INT64_MAX:
            return [f"field {key}: integer {value} does not fit in int64"]
        return []
    if isinstance(value, float):
        if not math.isfinite(value):
            return [f"field {key}: {value} is not a finite number (NaN and inf cannot be stored)"]
        return []
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            return [f"field {key}: string is not valid Unicode text (lone surrogate)"]
        return []
    return [f"field {key}: {type(value).__name__} {value!r} is not a bool, int, float or str"]


def point_problems(point: Point) -> list[str]:
    """Why any store refuses ``point`` (without naming the point), or nothing."""
    problems: list[str] = []
    if not isinstance(point.measurement, str) or not point.measurement:
        problems.append("measurement is empty")
    for key, value in point.tags.items():
        if not isinstance(key, str) or not key:
            problems.append(f"tag key {key!r} is empty or not a string")
        if not isinstance(value, str) or not value:
            problems.append(f"tag {key}: value {value!r} is empty or not a string")
    if not point.fields:
        problems.append("no fields")
    for key, fv in point.fields.items():
        if not isinstance(key, str) or not key:
            problems.append(f"field key {key!r} is empty or not a string")
        problems += field_value_problems(str(key), fv)
    if isinstance(point.time_ns, bool) or not isinstance(point.time_ns, int):
        problems.append(f"time {point.time_ns!r} is not an integer of nanoseconds")
    elif not MIN_TIME_NS <= point.time_ns <= MAX_TIME_NS:
        problems.append(
            f"time {point.time_ns} ns is outside what InfluxDB stores"
            f" ({MIN_TIME_NS} to {MAX_TIME_NS})"
        )
    return problems


def _line(point: Point) -> tuple[list[str], str]:
    """Every problem of ``point`` and, when there are none, its line (without newline)."""
    problems = point_problems(point)
    if problems:
        # Check what can be checked of the names too, so the caller hears every reason.
        for what, name in [("measurement", point.measurement), *_names(point)]:
            if isinstance(name, str) and name:
                problems += _name_problems(what, name)
        return problems, ""
    bad, measurement = _measurement(point.measurement)
    problems += bad
    tags = []
    for key, value in point.tags.items():
        bad, escaped_key = _tag_key(key)
        problems += bad
        bad, escaped_value = _tag_value(key, value)
        problems += bad
        tags.append((escaped_key, escaped_value))
    fields = []
    for key, fv in point.fields.items():
        bad, escaped_key = _field_key(key)
        problems += bad
        fields.append((escaped_key, fv))
    if problems:
        return problems, ""
    tags.sort()
    fields.sort(key=lambda kv: kv[0])
    series = ",".join([measurement, *(f"{k}={v}" for k, v in tags)])
    key_bytes = len(series.encode("utf-8")) + max(len(k.encode("utf-8")) for k, _ in fields)
    if key_bytes > MAX_KEY_BYTES:
        return [f"series key of {key_bytes} bytes exceeds InfluxDB's {MAX_KEY_BYTES}"], ""
    field_text = ",".join(f"{k}={_field(v)}" for k, v in fields)
    return [], f"{series} {field_text} {point.time_ns}"


def _names(point: Point) -> list[tuple[str, object]]:
    names: list[tuple[str, object]] = []
    for key, value in point.tags.items():
        names += [("tag key", key), (f"tag {key!r} value", value)]
    names += [("field key", key) for key in point.fields]
    return names


def line_problems(point: Point) -> list[str]:
    """Why ``point`` cannot be written as line protocol and read back the same, or nothing."""
    return _line(point)[0]


def _field(value: FieldValue) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return f"{value}i"
    if isinstance(value, float):
        return repr(value)
    return '"' + value.translate(_STRING_ESCAPES) + '"'


# -- the fast path ---------------------------------------------------------------------------
#
# A collector writes thousands of points a second, nearly all of a few series and field sets.
# ``_fast_line`` writes a point from two caches (its series key, its field keys) and formats the
# values with the same checks, and answers None whenever anything is not plainly right, or not
# of the exact types; ``_line`` then finds every problem as before. Each cached entry is
# computed by the very checks ``_line`` runs, so both paths write the same text.


@lru_cache(maxsize=8192)
def _series(measurement: str, tags: tuple[tuple[str, str], ...]) -> tuple[str, int] | None:
    """The escaped series key (measurement and sorted tags) and its UTF-8 length, or None."""
    if type(measurement) is not str or not measurement:
        return None
    bad, escaped = _measurement(measurement)
    if bad:
        return None
    pairs = []
    for key, value in tags:
        if type(key) is not str or not key or type(value) is not str or not value:
            return None
        bad_key, escaped_key = _tag_key(key)
        bad_value, escaped_value = _tag_value(key, value)
        if bad_key or bad_value:
            return None
        pairs.append((escaped_key, escaped_value))
    pairs.sort()
    series = ",".join([escaped, *(f"{k}={v}" for k, v in pairs)])
    try:
        return series, len(series.encode("utf-8"))
    except UnicodeEncodeError:
        return None


@lru_cache(maxsize=4096)
def _field_keys(keys: tuple[str, ...]) -> tuple[tuple[tuple[str, str], ...], int] | None:
    """(original, escaped) field keys in line order and the longest one's UTF-8 length."""
    if not keys:
        return None
    pairs = []
    for key in keys:
        if type(key) is not str or not key:
            return None
        bad, escaped = _field_key(key)
        if bad:
            return None
        pairs.append((key, escaped))
    pairs.sort(key=lambda ke: ke[1])
    try:
        return tuple(pairs), max(len(escaped.encode("utf-8")) for _, escaped in pairs)
    except UnicodeEncodeError:
        return None


def _fast_line(point: Point) -> str | None:
    """``point``'s line when it is plainly writable; None sends it to the full checks."""
    try:
        series = _series(point.measurement, tuple(point.tags.items()))
    except TypeError:  # an unhashable name or value: not a point this path can judge
        return None
    if series is None:
        return None
    return fast_line(series, point.fields, point.time_ns)


def field_order(keys: tuple[str, ...]) -> tuple[tuple[tuple[str, str], ...], int] | None:
    """(original, escaped) field keys in the order a line holds them, and the longest escaped
    key's UTF-8 length; None when a key is not plainly writable. Cached."""
    try:
        return _field_keys(keys)
    except TypeError:
        return None


#: A string field's value inside its quotes: ``value.translate(STRING_ESCAPES)``.
STRING_ESCAPES = _STRING_ESCAPES


def series_key(measurement: str, tags: tuple[tuple[str, str], ...]) -> tuple[str, int] | None:
    """The escaped series key of a measurement and tag set and its UTF-8 length, when plainly
    writable (else None: the full checks decide). Cached; the tags in any order."""
    try:
        return _series(measurement, tags)
    except TypeError:
        return None


def parse_series_key(key: str) -> tuple[str, dict[str, str]]:
    """The measurement and tags of an escaped series key, as InfluxDB's ``SHOW SERIES`` lists
    it (the inverse of :func:`series_key`: a backslash escapes ``,``, ``=`` and space, any other
    backslash is itself).

    >>> parse_series_key(r"visit,node=rr\\ 01,site=a\\,b\\=c,x=C:\\t")
    ('visit', {'node': 'rr 01', 'site': 'a,b=c', 'x': 'C:\\\\t'})
    """
    tokens: list[tuple[str, int]] = []  # (unescaped text, where its first "=" is or -1)
    text: list[str] = []
    equals = -1
    i, n = 0, len(key)
    while i < n:
        c = key[i]
        if c == "\\" and i + 1 < n and key[i + 1] in ", =":
            text.append(key[i + 1])
            i += 2
            continue
        if c == ",":
            tokens.append(("".join(text), equals))
            text, equals = [], -1
        else:
            if c == "=" and equals < 0:
                equals = len(text)
            text.append(c)
        i += 1
    tokens.append(("".join(text), equals))
    (measurement, _), *pairs = tokens
    return measurement, {t[:at]: t[at + 1 :] for t, at in pairs if at >= 0}


def fast_line(series: tuple[str, int], fields: Mapping[str, Any], time_ns: Any) -> str | None:
    """The line (without newline) of a point of ``series`` (from :func:`series_key`), when
    plainly writable; None when only the full checks can say."""
    if type(time_ns) is not int or not MIN_TIME_NS <= time_ns <= MAX_TIME_NS:
        return None
    try:
        keys = _field_keys(tuple(fields))
    except TypeError:
        return None
    if keys is None:
        return None
    series_text, series_bytes = series
    pairs, longest_key = keys
    if series_bytes + longest_key > MAX_KEY_BYTES:
        return None
    texts = []
    for key, escaped in pairs:
        # Any: the exact-type tests below narrow it; a subclass goes to the full checks.
        value: Any = fields[key]
        kind = type(value)
        if kind is float:
            if not math.isfinite(value):
                return None
            texts.append(f"{escaped}={value!r}")
        elif kind is int:
            if not INT64_MIN <= value <= INT64_MAX:
                return None
            texts.append(f"{escaped}={value}i")
        elif kind is bool:
            texts.append(f"{escaped}=true" if value else f"{escaped}=false")
        elif kind is str:
            texts.append(f'{escaped}="{value.translate(_STRING_ESCAPES)}"')
        else:
            return None
    return f"{series_text} {','.join(texts)} {time_ns}"


def _fast_lines(points: Iterable[Point]) -> list[str] | None:
    lines = []
    for point in points:
        line = _fast_line(point)
        if line is None:
            return None
        lines.append(line)
    return lines


def _lines(points: Iterable[Point]) -> list[str]:
    points = list(points)
    fast = _fast_lines(points)
    if fast is not None:
        return fast
    return _checked_lines(points)


def _checked_lines(points: Iterable[Point]) -> list[str]:
    lines: list[str] = []
    reasons: list[str] = []
    for point in points:
        problems, line = _line(point)
        if problems:
            reasons += [f"{_describe(point)}: {p}" for p in problems]
        else:
            lines.append(line)
    if reasons:
        raise PointsRejected(reasons)
    return lines


def encode_point(point: Point) -> str:
    """One line (without the newline) for ``point``; :class:`PointsRejected` if it cannot be."""
    (line,) = _lines([point])
    return line


def encode_points(points: Iterable[Point]) -> bytes:
    """The UTF-8 body for a batch, one line per point.

    Every point is checked first; if any cannot be written, nothing is encoded and
    :class:`PointsRejected` names each bad point and why.
    """
    return _body(list(points))


def _body(points: list[Point]) -> bytes:
    fast = _fast_lines(points)
    if fast is not None:
        fast.append("")
        try:
            return "\n".join(fast).encode("utf-8")
        except UnicodeEncodeError:
            pass  # a lone surrogate in a string field: the full checks name it
    return "".join(line + "\n" for line in _checked_lines(points)).encode("utf-8")


def chunks(points: Iterable[Point], max_bytes: int) -> Iterator[bytes]:
    """``encode_points`` split into bodies of whole lines, each at most ``max_bytes`` when it
    holds more than one line (string fields may hold newlines, so lines are cut per point)."""
    points = list(points)
    whole = _body(points)
    if len(whole) <= max_bytes:
        if whole:
            yield whole
        return
    body: list[bytes] = []
    size = 0
    for text in _lines(points):
        line = (text + "\n").encode("utf-8")
        if body and size + len(line) > max_bytes:
            yield b"".join(body)
            body, size = [], 0
        body.append(line)
        size += len(line)
    if body:
        yield b"".join(body)
