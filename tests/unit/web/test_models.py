"""The readers and the models, without a server: every operation's query model reads an
empty query, lists come in the three spellings, and errors name the field and what was
expected."""

from __future__ import annotations

import pytest
from starlette.datastructures import QueryParams

from hub.api.body import decode_json
from hub.api.http import BadRequest
from hub.api.openapi import operations
from hub.api.query import read_query
from hub.api.schema.cometchat import CcUsersQuery
from hub.api.schema.rocketchat import RcListByStatusQuery, RcSetStatusBody


def test_every_query_model_reads_an_empty_query() -> None:
    """No operation's query model has a required field or a type the reader cannot
    inspect (msgspec rejects some annotations only when first used)."""
    queries = [op.query for op in operations() if op.query is not None]
    assert queries
    for model in queries:
        read_query(QueryParams(""), model)


@pytest.mark.parametrize("raw", ["roles=a,b", "roles=a&roles=b", "roles[]=a&roles[]=b"])
def test_lists_in_three_spellings(raw: str) -> None:
    assert read_query(QueryParams(raw), RcListByStatusQuery).roles == ["a", "b"]


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ("perPage=1001", "perPage: Expected `int` <= 1000"),
        ("page=one", "page: Expected `int`, got `str`"),
        ("status=busy", "status must be one of available, offline; got 'busy'"),
    ],
)
def test_query_errors_name_the_field_and_the_expectation(raw: str, message: str) -> None:
    with pytest.raises(BadRequest) as error:
        read_query(QueryParams(raw), CcUsersQuery)
    assert str(error.value) == message


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (b'{"status": 3}', "status: Expected `str | null`, got `int`"),
        (b'{"message": "\\ud800"}', "message must be valid Unicode text"),
        (b'{"message": ' + b"[" * 1500 + b"]" * 1500 + b"}", "message: Expected"),
        (b'{"x": {"y": ' + b"[" * 1500 + b"]" * 1500 + b"}}", "x nests too deeply"),
        (b"[1]", "body: Expected `object`, got `array`"),
        (b"{", "body is not valid JSON"),
    ],
)
def test_body_errors_name_the_field(raw: bytes, message: str) -> None:
    with pytest.raises(BadRequest) as error:
        decode_json(raw, RcSetStatusBody)
    assert str(error.value).startswith(message), str(error.value)


def test_a_parameter_holding_json_names_itself() -> None:
    with pytest.raises(BadRequest) as error:
        decode_json('{"a": ' + "[" * 1500 + "]" * 1500 + "}", dict[str, int], what="sort")
    assert str(error.value).startswith("sort")


@pytest.mark.parametrize("vendor", ["rocketchat", "cometchat", "iflychat", "agora", "hub"])
async def test_an_unexpected_error_is_a_json_500_in_the_vendors_shape(vendor: str) -> None:
    """A handler bug still answers JSON (the vendor's error shape), never plain text, and
    says nothing of the error itself."""
    from starlette.requests import Request

    from hub.api import rest as api
    from hub.api.compat import agora, cometchat, iflychat, rocketchat

    tables = {
        "rocketchat": rocketchat.HANDLERS,
        "cometchat": cometchat.HANDLERS,
        "iflychat": iflychat.HANDLERS,
        "agora": agora.HANDLERS,
        "hub": api.HANDLERS,
    }
    request = Request({"type": "http", "method": "GET", "path": "/boom", "headers": [],
                       "query_string": b"", "state": {}})  # fmt: skip
    response = await tables[vendor][Exception](request, ZeroDivisionError("a bug"))
    assert response.status_code == 500
    assert response.headers["content-type"] == "application/json"
    assert b"internal error" in response.body and b"a bug" not in response.body
