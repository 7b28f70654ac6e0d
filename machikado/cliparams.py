"""Typer command classes whose plain options are read without pydantic, when typer allows it.

Typer 0.29 checks every option value with a pydantic ``TypeAdapter``, built when the value is
first seen: parsing ``machikado kiosk --config PATH`` imports pydantic and builds its schemas,
a good part of the kiosk's start before its window opens. Most of our options are plain (a
path, a number, a string, flags), so :data:`PlainGroup` and :data:`PlainCommand` read the
values that are plainly valid directly: a path given as a non-empty string, a decimal number
within its bounds, a string. Any other value (a typo, a number out of range, an annotation not
listed here) goes to typer's own pydantic check, so what typer accepts, returns and says about
a bad value is unchanged.

The plain reading plugs into typer internals (``typer._coercion``, ``typer._param_types``,
``typer.core._TyperParameter``) that a typer release may change. They are checked once, at
import: if any is missing or not shaped as expected, :data:`PlainGroup` and
:data:`PlainCommand` are typer's own ``TyperGroup`` and ``TyperCommand`` (same behaviour, a
slower start) and :data:`UNUSABLE` says why; ``machikado`` logs it at debug level.

>>> import typer
>>> app = typer.Typer(cls=PlainGroup)
"""

from __future__ import annotations

import inspect
import re
from dataclasses import dataclass, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any

from typer.core import TyperCommand, TyperGroup

if TYPE_CHECKING:
    from typer._click import Context, Parameter

#: Decimal numbers as pydantic reads them, in the plainest spelling only (no exponent, no
#: leading zeros, no spaces or underscores): anything else is left to pydantic.
_INT = re.compile(r"-?(?:0|[1-9][0-9]*)")
_FLOAT = re.compile(r"-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?")
#: Marks a value the plain reading leaves to typer's own check.
_UNSURE = object()


def _shape_problem() -> str | None:
    """What in typer's internals is not as the plain reading expects; None when all is."""
    from typer._coercion import RuntimeParam, TypeDescriptor, build_runtime_param
    from typer._param_types import coerce_cli_path
    from typer.core import _TyperParameter
    from typer.models import ParameterInfo

    expected: list[tuple[str, bool]] = [
        (
            "RuntimeParam has the fields parameter_info, annotation",
            [f.name for f in fields(RuntimeParam)] == ["parameter_info", "annotation"],
        ),
        (
            "RuntimeParam leaves only _coerce_value abstract",
            getattr(RuntimeParam, "__abstractmethods__", None) == frozenset({"_coerce_value"}),
        ),
        (
            "TypeDescriptor has annotation, parameter_info, file_annotation",
            {"annotation", "parameter_info", "file_annotation"}
            <= {f.name for f in fields(TypeDescriptor)},
        ),
        (
            "_TyperParameter keeps _runtime_param and type_descriptor",
            {"_runtime_param", "type_descriptor"} <= set(_TyperParameter.__annotations__)
            and callable(getattr(_TyperParameter, "get_runtime_param", None)),
        ),
        (
            "ParameterInfo takes parser, clamp, min, max, path_type",
            {"parser", "clamp", "min", "max", "path_type"}
            <= set(inspect.signature(ParameterInfo.__init__).parameters),
        ),
        (
            "coerce_cli_path takes value, parameter_info, path_type, param, ctx",
            list(inspect.signature(coerce_cli_path).parameters)
            == ["value", "parameter_info", "path_type", "param", "ctx"],
        ),
        ("build_runtime_param is callable", callable(build_runtime_param)),
    ]
    wrong = [what for what, ok in expected if not ok]
    return f"typer changed: not true that {'; '.join(wrong)}" if wrong else None


try:
    from typer._coercion import RuntimeParam, build_runtime_param
    from typer._param_types import coerce_cli_path
    from typer.core import _TyperParameter

    _problem = _shape_problem()
except (ImportError, AttributeError, TypeError, ValueError) as exc:
    # ValueError, TypeError: inspect.signature or dataclasses.fields on a changed object.
    _problem = f"typer changed: {type(exc).__name__}: {exc}"

#: Why the plain reading is off (typer's internals are not as expected), or None when it is on.
UNUSABLE: str | None = _problem

if UNUSABLE is None:

    @dataclass(frozen=True)
    class PlainParam(RuntimeParam):
        """Reads plainly valid values itself; hands any other one to typer's pydantic check."""

        def _coerce_value(self, value: Any, param: _TyperParameter, ctx: Context) -> Any:
            plain = self._plain(value, param, ctx)
            if plain is not _UNSURE:
                return plain
            # Built and kept the way typer builds it: from here on this option is typer's own.
            param._runtime_param = full = build_runtime_param(param.type_descriptor)
            return full._coerce_value(value, param=param, ctx=ctx)

        def _plain(self, value: Any, param: _TyperParameter, ctx: Context) -> Any:
            info, kind = self.parameter_info, self.annotation
            if info.parser is not None or info.clamp:
                return _UNSURE
            if kind is str:
                return value if type(value) is str else _UNSURE
            if kind is int or kind is float:
                number = _number(value, kind)
                if number is None:
                    return _UNSURE
                low, high = info.min, info.max
                if (low is not None and number < low) or (high is not None and number > high):
                    return _UNSURE  # out of range: typer's message names the bound
                return number
            if kind is Path and info.path_type is None:
                if type(value) is str and value:
                    # Given a Path, typer checks existence and kind (file/dir) without pydantic.
                    return coerce_cli_path(Path(value), info, path_type=Path, param=param, ctx=ctx)
                if isinstance(value, Path):
                    return coerce_cli_path(value, info, path_type=Path, param=param, ctx=ctx)
            return _UNSURE

    def _read_plainly(params: list[Parameter]) -> None:
        for param in params:
            # An option typer made some other way, or already checked, stays typer's own.
            if isinstance(param, _TyperParameter) and getattr(param, "_runtime_param", 0) is None:
                desc = param.type_descriptor
                if desc.file_annotation is None:
                    param._runtime_param = PlainParam(
                        parameter_info=desc.parameter_info, annotation=desc.annotation
                    )


def _number(value: Any, kind: type[int] | type[float]) -> int | float | None:
    """``value`` as an int or float when it plainly is one, else None."""
    if type(value) is kind:
        number: int | float = value
        return number
    if kind is float and type(value) is int:
        return float(value)
    if type(value) is str:
        if kind is int and _INT.fullmatch(value):
            return int(value)
        if kind is float and _FLOAT.fullmatch(value):
            return float(value)
    return None


def read_plainly(params: list[Parameter]) -> None:
    """Give each typer option not yet checked the plain reading first (when it is on)."""
    if UNUSABLE is None:
        _read_plainly(params)


class _PlainGroup(TyperGroup):
    """A typer group whose own options are read plainly."""

    def get_params(self, ctx: Context) -> list[Parameter]:
        params = super().get_params(ctx)
        read_plainly(params)  # --help too, which is made here
        return params


class _PlainCommand(TyperCommand):
    """A typer command whose options are read plainly."""

    def get_params(self, ctx: Context) -> list[Parameter]:
        params = super().get_params(ctx)
        read_plainly(params)  # --help too, which is made here
        return params


#: The group class for ``typer.Typer(cls=PlainGroup)``: typer's own when the plain reading is off.
PlainGroup: type[TyperGroup] = TyperGroup if UNUSABLE else _PlainGroup
#: The command class for ``@app.command(cls=PlainCommand)``: typer's own when it is off.
PlainCommand: type[TyperCommand] = TyperCommand if UNUSABLE else _PlainCommand
