"""The one query reader: a request's query string decoded into the endpoint's model.

A list field reads every value in the three spellings clients use (``name=a,b``,
``name=a&name=b``, ``name[]=a``); any other field reads the parameter's value, converted
to the field's type (``"5"`` to an int, ``"true"`` to a bool). An integer is written in
decimal digits: ``1e3`` or ``1000.0`` are refused, not read as 1000. Errors name the
parameter and what was expected: ``perPage: Expected `int` <= 1000``.
"""

from __future__ import annotations

import re
from typing import Any, TypeVar

import msgspec
from starlette.datastructures import QueryParams

from hub.api.body import convert
from hub.api.compat.common import query_list
from hub.api.http import BadRequest

T = TypeVar("T")


def _is_list(info: msgspec.inspect.Type) -> bool:
    if isinstance(info, msgspec.inspect.Metadata):
        return _is_list(info.type)
    if isinstance(info, msgspec.inspect.UnionType):
        return any(_is_list(t) for t in info.types)
    return isinstance(info, msgspec.inspect.ListType)


def _choices(info: msgspec.inspect.Type) -> tuple[Any, ...]:
    if isinstance(info, msgspec.inspect.Metadata):
        return _choices(info.type)
    if isinstance(info, msgspec.inspect.UnionType):
        return tuple(v for t in info.types for v in _choices(t))
    if isinstance(info, msgspec.inspect.LiteralType):
        return tuple(info.values)
    return ()


def _is_int(info: msgspec.inspect.Type) -> bool:
    """An integer field (``int``, ``int | None``, constrained or not), never a float one."""
    if isinstance(info, msgspec.inspect.Metadata):
        return _is_int(info.type)
    if isinstance(info, msgspec.inspect.UnionType):
        kinds = [t for t in info.types if not isinstance(t, msgspec.inspect.NoneType)]
        return bool(kinds) and all(_is_int(t) for t in kinds)
    return isinstance(info, msgspec.inspect.IntType)


#: An integer as a query string writes it. (msgspec's lax conversion would also take
#: "1e3" and "1000.0" for 1000: a float is not what the APIs document.)
_INTEGER = re.compile(r"-?[0-9]+")

Field = tuple[str, bool, tuple[Any, ...], bool]
_FIELDS: dict[type[Any], tuple[Field, ...]] = {}


def _fields(model: type[Any]) -> tuple[Field, ...]:
    """Each field's name, whether it is a list, its choices (a Literal) and whether it is an
    integer; cached."""
    found = _FIELDS.get(model)
    if found is None:
        info = msgspec.inspect.type_info(model)
        assert isinstance(info, msgspec.inspect.StructType), model
        found = tuple(
            (f.encode_name, _is_list(f.type), _choices(f.type), _is_int(f.type))
            for f in info.fields
        )
        _FIELDS[model] = found
    return found


def read_query(params: QueryParams, model: type[T]) -> T:
    """The query string as ``model``; :class:`~hub.api.http.BadRequest` naming the field.
    An empty value counts as absent."""
    data: dict[str, Any] = {}
    for name, is_list, choices, is_int in _fields(model):
        if is_list:
            values = query_list(params, name)
            if values:
                data[name] = values
        elif params.get(name):
            value = params[name]
            if choices and value not in choices:
                allowed = ", ".join(str(c) for c in choices)
                raise BadRequest(f"{name} must be one of {allowed}; got {value!r}")
            if is_int and not _INTEGER.fullmatch(value):
                # What "abc" gets: a number that is not an integer is no integer either.
                raise BadRequest(f"{name}: Expected `int`, got `str`")
            data[name] = value
    return convert(data, model)
