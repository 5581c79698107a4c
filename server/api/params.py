"""Request parameters the way Mastodon clients send them.

Clients send the same parameters as a query string, a form, multipart, or JSON, with
nested names either as brackets (``source[privacy]``, ``media_ids[]``) or as JSON objects
and arrays. ``Params`` flattens all of them into one multi-dict with bracket names, so an
endpoint reads ``params.str("source[privacy]")`` or ``params.list("media_ids")`` whatever
the client sent. Wrong types are a 422 with a message naming the parameter, never a 500.
"""

from __future__ import annotations

import json
import re
from typing import Any

from starlette.datastructures import UploadFile
from starlette.requests import Request

from server.api.middleware import OPEN_FORMS_KEY
from server.errors import ApiError, BodyTooLarge
from server.ids import MAX_ID
from server.ids import parse_id as parse_db_id
from server.json_depth import depth_error, too_deep

TRUE_WORDS = {"true", "1", "on", "yes", "t"}
FALSE_WORDS = {"false", "0", "off", "no", "f", ""}

# The most a JSON or form body may be; uploads have their own limit.
MAX_BODY_BYTES = 1024 * 1024


def _flatten(prefix: str, value: Any, into: dict[str, list[Any]]) -> None:
    if isinstance(value, dict):
        for key, inner in value.items():
            _flatten(f"{prefix}[{key}]" if prefix else str(key), inner, into)
    elif isinstance(value, list):
        if not value:  # given, and empty ("media_ids": [] removes every attachment)
            into.setdefault(prefix, [])
        for index, inner in enumerate(value):
            if isinstance(inner, dict | list):
                _flatten(f"{prefix}[{index}]", inner, into)
            else:
                into.setdefault(prefix, []).append(inner)
    else:
        into.setdefault(prefix, []).append(value)


class Params:
    def __init__(self, values: dict[str, list[Any]],
                 pairs: list[tuple[str, Any]] | None = None) -> None:
        # "name[]" and "name" are the same list.
        self.values: dict[str, list[Any]] = {}
        for key, items in values.items():
            name = key[:-2] if key.endswith("[]") else key
            self.values.setdefault(name, []).extend(items)
        # Every (name, value) in the order it came: ``name[][field]`` entries are told
        # apart by it (see get_indexed).
        self.pairs: list[tuple[str, Any]] = (
            pairs if pairs is not None
            else [(key, item) for key, items in values.items() for item in items])

    @classmethod
    async def from_request(cls, request: Request) -> Params:
        values: dict[str, list[Any]] = {}
        pairs: list[tuple[str, Any]] = []
        for key, value in request.query_params.multi_items():
            values.setdefault(key, []).append(value)
            pairs.append((key, value))
        if request.method in ("POST", "PUT", "PATCH", "DELETE"):
            content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
            if content_type == "application/json" or content_type.endswith("+json"):
                body = await request.body()
                if len(body) > MAX_BODY_BYTES:
                    raise ApiError(413, "Request body is too large")
                if body.strip():
                    if too_deep(body):
                        raise ApiError(400, depth_error())
                    try:
                        data = json.loads(body)
                    except (ValueError, UnicodeDecodeError, RecursionError):
                        raise ApiError(400, "Malformed JSON body") from None
                    if not isinstance(data, dict):
                        raise ApiError(400, "The JSON body must be an object")
                    flat: dict[str, list[Any]] = {}
                    _flatten("", data, flat)
                    for key, items in flat.items():
                        values.setdefault(key, []).extend(items)
                        pairs.extend((key, item) for item in items)
            elif content_type in ("application/x-www-form-urlencoded", "multipart/form-data"):
                try:
                    form = await request.form(max_files=16, max_fields=1000)
                except BodyTooLarge as exc:
                    raise ApiError(413, str(exc)) from None
                except Exception as exc:  # malformed multipart, too many parts
                    raise ApiError(400, f"Malformed form body: {exc}") from None
                # Uploaded parts are temporary files: CloseUploadsMiddleware closes them
                # once the response is sent.
                request.scope.setdefault(OPEN_FORMS_KEY, []).append(form)
                for key, item in form.multi_items():
                    values.setdefault(key, []).append(item)
                    pairs.append((key, item))
        return cls(values, pairs)

    def has(self, name: str) -> bool:
        return name in self.values

    def raw(self, name: str) -> Any:
        """The single value of ``name``; a list where one value belongs is an error."""
        items = self.values.get(name)
        if not items:
            return None
        if len(items) > 1 and not isinstance(items[0], str | UploadFile):
            raise ApiError(422, f"Validation failed: {name} must be a single value")
        return items[-1]

    def get_str(self, name: str, default: str | None = None, *, max_length: int | None = None) -> str | None:
        value = self.raw(name)
        if value is None:
            return default
        if isinstance(value, UploadFile) or isinstance(value, dict | list):
            raise ApiError(422, f"Validation failed: {name} must be text")
        if isinstance(value, bool):
            value = "true" if value else "false"
        text = str(value)
        if "\x00" in text:
            raise ApiError(422, f"Validation failed: {name} contains a NUL character")
        if max_length is not None and len(text) > max_length:
            raise ApiError(422, f"Validation failed: {name} is too long (maximum is {max_length} characters)")
        return text

    def require_str(self, name: str, *, max_length: int | None = None) -> str:
        value = self.get_str(name, max_length=max_length)
        if value is None or not value.strip():
            raise ApiError(422, f"Validation failed: {name} can't be blank")
        return value

    def get_bool(self, name: str, default: bool | None = None) -> bool | None:
        value = self.raw(name)
        if value is None:
            return default
        if isinstance(value, bool):
            return value
        if isinstance(value, int) and not isinstance(value, float) and value in (0, 1):
            return bool(value)
        word = str(value).strip().lower() if not isinstance(value, UploadFile) else "?"
        if word in TRUE_WORDS:
            return True
        if word in FALSE_WORDS:
            return False
        raise ApiError(422, f"Validation failed: {name} must be true or false")

    def get_int(self, name: str, default: int | None = None, *, minimum: int | None = None,
            maximum: int | None = None) -> int | None:
        value = self.raw(name)
        if value is None or value == "":
            return default
        if isinstance(value, bool) or isinstance(value, UploadFile):
            raise ApiError(422, f"Validation failed: {name} must be a number")
        text = str(value).strip()
        if not re.fullmatch(r"-?[0-9]{1,19}", text):
            raise ApiError(422, f"Validation failed: {name} must be a number")
        number = int(text)
        if abs(number) > MAX_ID:
            raise ApiError(422, f"Validation failed: {name} is out of range")
        if minimum is not None and number < minimum:
            number = minimum
        if maximum is not None and number > maximum:
            number = maximum
        return number

    def get_float(self, name: str, default: float | None = None) -> float | None:
        value = self.raw(name)
        if value is None or value == "":
            return default
        try:
            return float(str(value).strip())
        except ValueError:
            raise ApiError(422, f"Validation failed: {name} must be a number") from None

    def get_list(self, name: str) -> list[str]:
        """All values of ``name`` / ``name[]``, as strings (a JSON array or repeated keys);
        a JSON ``null`` is no value (``"media_ids": null`` is an empty list, as in Rails)."""
        items = self.values.get(name, [])
        result = []
        for item in items:
            if item is None:
                continue
            if isinstance(item, UploadFile) or isinstance(item, dict | list):
                raise ApiError(422, f"Validation failed: {name} must be a list of text")
            result.append(str(item))
        return result

    def get_ids(self, name: str, *, skip_blank: bool = False) -> list[int]:
        ids = []
        for item in self.get_list(name):
            if skip_blank and not item.strip():
                continue
            value = parse_db_id(item)
            if value is None:
                raise ApiError(422, f"Validation failed: {name} must contain ids")
            ids.append(value)
        return ids

    def get_file(self, name: str) -> UploadFile | None:
        value = self.raw(name)
        if value is None or value == "":
            return None
        if not isinstance(value, UploadFile):
            raise ApiError(422, f"Validation failed: {name} must be a file")
        return value

    def get_indexed(self, name: str) -> list[dict[str, Any]]:
        """``name[0][key]=…`` (or a JSON array of objects, or ``name[][key]``) as a list of dicts.

        ``name[][key]`` entries are read in the order they came, as Rails does: a key
        that the entry being read already has starts the next entry, so
        ``a[][id]=1&a[][focus]=f&a[][id]=2&a[][description]=d`` is
        ``[{id: 1, focus: f}, {id: 2, description: d}]``."""
        groups: dict[str, dict[str, Any]] = {}
        prefix = f"{name}["
        for key, items in self.values.items():
            if not key.startswith(prefix):
                continue
            rest = key[len(prefix):]
            index, _, tail = rest.partition("]")
            field = tail.strip("[]")
            if field and index != "":
                groups.setdefault(index, {})[field] = items[-1]
        unindexed: list[dict[str, Any]] = []
        for key, item in self.pairs:
            if not key.startswith(f"{name}[]["):
                continue
            field = key[len(name) + 2:].strip("[]")
            if not field:
                continue
            if not unindexed or field in unindexed[-1]:
                unindexed.append({})
            unindexed[-1][field] = item
        for position, entry in enumerate(unindexed):
            groups.setdefault(str(position), {}).update(entry)
        def order(key: str) -> tuple[int, str]:
            return (int(key), "") if key.isdigit() else (1 << 30, key)
        return [groups[key] for key in sorted(groups, key=order)]


def parse_id(raw: str, what: str = "Record") -> int:
    """A path id; anything but digits is simply not found, as in Mastodon."""
    value = parse_db_id(raw)
    if value is None:
        raise ApiError(404, "Record not found")
    return value
