"""The one request-body reader: a size limit on ``Content-Length`` and while streaming, then
typed decoding (msgspec) whose errors name the field and the expected type.

Every REST endpoint reads its body here. A body over the limit is refused with
:class:`PayloadTooLarge` (413) before it is read whole: a declared length over the limit is
refused at once, and a chunked body is counted as it arrives. JSON is decoded by msgspec
straight into the endpoint's model; what msgspec refuses is explained by field:

- a value of the wrong type: ``status: Expected `str | null`, got `int```;
- a string that is not valid Unicode (a lone surrogate such as ``"\\ud800"``, which
  msgspec refuses while Python's ``json`` would let it through): the field that holds it;
- nesting too deep for the decoder (``RecursionError``): the top-level field that nests.
"""

from __future__ import annotations

import json
import re
from typing import Any, TypeVar
from urllib.parse import parse_qsl

import msgspec
from starlette.requests import Request

from hub.api.http import BadRequest, PayloadTooLarge

#: Largest request body any REST endpoint reads (a batch of 100 usernames fits easily).
MAX_BODY_BYTES = 256 * 1024

T = TypeVar("T")

_AT = re.compile(r"^(?P<message>.*) - at `\$(?P<path>[^`]*)`$", re.S)
_MISSING = re.compile(r"^Object missing required field `(?P<name>[^`]+)`$")


async def read_body(request: Request, limit: int = MAX_BODY_BYTES) -> bytes:
    """The raw body, at most ``limit`` bytes; :class:`PayloadTooLarge` beyond."""
    declared = request.headers.get("content-length")
    if declared is not None:
        try:
            length = int(declared)
        except ValueError:
            raise BadRequest("Content-Length must be a whole number") from None
        if length > limit:
            raise PayloadTooLarge(f"body must be at most {limit} bytes, got {length}")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise PayloadTooLarge(f"body must be at most {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


def _where(path: str, what: str) -> str:
    """``$.a.b`` in the body as ``a.b``; in a parameter ``sort`` as ``sort.a.b``."""
    path = path.replace("[...]", "").lstrip(".")
    if what == "body":
        return path or "body"
    return f"{what}.{path}".replace(".[", "[") if path else what


def _invalid(exc: msgspec.ValidationError, what: str = "body") -> BadRequest:
    text = str(exc)
    match = _AT.match(text)
    message, path = (match["message"], match["path"]) if match else (text, "")
    missing = _MISSING.match(message)
    if missing:
        name = missing["name"]
        return BadRequest(f"{_where(f'{path}.{name}', what)} is required")
    return BadRequest(f"{_where(path, what)}: {message}")


def _bad_text_path(value: Any) -> str | None:
    """The path of the first string (key or value) that is not valid Unicode, if any."""
    stack: list[tuple[str, Any]] = [("", value)]
    while stack:
        path, item = stack.pop()
        if isinstance(item, str):
            try:
                item.encode()
            except UnicodeEncodeError:
                return path or "body"
        elif isinstance(item, dict):
            for key, sub in item.items():
                try:
                    key.encode()
                except UnicodeEncodeError:
                    return f"{path}.{key!a}".lstrip(".")
                stack.append((f"{path}.{key}".lstrip("."), sub))
        elif isinstance(item, list):
            stack.extend((f"{path}[{i}]", sub) for i, sub in enumerate(item))
    return None


def _not_json(raw: bytes, what: str) -> BadRequest:
    """Why msgspec could not decode ``raw``: bad Unicode in a field, or not JSON at all."""
    try:
        value = json.loads(raw)
    except RecursionError:
        return BadRequest(f"{what} nests too deeply")
    except ValueError as exc:
        return BadRequest(f"{what} is not valid JSON: {exc}")
    path = _bad_text_path(value)
    if path is not None:
        where = _where(path, what)
        return BadRequest(f"{where} must be valid Unicode text (it holds a lone surrogate)")
    return BadRequest(f"{what} is not valid JSON")


def _deep_field(raw: bytes) -> str | None:
    """The top-level key of the JSON object ``raw`` under which nesting is deepest: a scan
    with no recursion (the decoders recurse, so they cannot answer this themselves)."""
    depth = deepest = 0
    key: str | None = None
    found: str | None = None
    in_string = escaped = False
    start = 0
    for i, byte in enumerate(raw):
        if in_string:
            if escaped:
                escaped = False
            elif byte == 0x5C:  # backslash
                escaped = True
            elif byte == 0x22:  # closing quote
                in_string = False
                if depth == 1 and raw[i + 1 : i + 2].strip() in (b":", b""):
                    key = raw[start + 1 : i].decode("utf-8", "replace")
        elif byte == 0x22:
            in_string, start = True, i
        elif byte in (0x5B, 0x7B):  # [ {
            depth += 1
            if depth > deepest:
                deepest, found = depth, key
        elif byte in (0x5D, 0x7D):
            depth -= 1
    return found


def _too_deep(raw: bytes, what: str) -> BadRequest:
    """Name the top-level field that nests too deeply for the decoder."""
    name = _deep_field(raw)
    return BadRequest(f"{_where(name or '', what)} nests too deeply")


def decode_json(raw: bytes | str, model: type[T], *, what: str = "body") -> T:
    """``raw`` decoded as ``model``; :class:`BadRequest` naming the field otherwise."""
    data = raw.encode("utf-8", "surrogatepass") if isinstance(raw, str) else raw
    try:
        return msgspec.json.decode(data, type=model)
    except msgspec.ValidationError as exc:
        raise _invalid(exc, what) from None
    except msgspec.DecodeError:
        raise _not_json(data, what) from None
    except RecursionError:
        raise _too_deep(data, what) from None


def convert(value: Any, model: type[T]) -> T:
    """A decoded map (a form) as ``model``, strings converted; errors name the field."""
    try:
        return msgspec.convert(value, type=model, strict=False)
    except msgspec.ValidationError as exc:
        raise _invalid(exc) from None


async def read_json(request: Request, model: type[T], *, limit: int = MAX_BODY_BYTES) -> T:
    """The body as JSON decoded into ``model``; an empty body counts as ``{}``."""
    raw = await read_body(request, limit)
    return decode_json(raw if raw.strip() else b"{}", model)


async def read_json_or_form(request: Request, model: type[T], *, limit: int = MAX_BODY_BYTES) -> T:
    """The body as JSON, or as a urlencoded form (PHP clients), decoded into ``model``."""
    raw = await read_body(request, limit)
    if not raw.strip():
        raw = b"{}"
    if "application/x-www-form-urlencoded" in request.headers.get("content-type", ""):
        try:
            form = dict(parse_qsl(raw.decode(), keep_blank_values=True, strict_parsing=True))
        except (UnicodeDecodeError, ValueError):
            raise BadRequest("body is not a valid form") from None
        return convert(form, model)
    return decode_json(raw, model)
