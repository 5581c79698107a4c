"""Parameters arrive as query, form, multipart or JSON; endpoints read them one way."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from server.api.middleware import BodyLimitMiddleware, CloseUploadsMiddleware
from server.api.params import Params
from server.errors import EXCEPTION_HANDLERS


async def echo(request: Request) -> JSONResponse:
    params = await Params.from_request(request)
    upload = params.get_file("file")
    return JSONResponse({
        "status": params.get_str("status"),
        "sensitive": params.get_bool("sensitive"),
        "media_ids": params.get_list("media_ids"),
        "privacy": params.get_str("source[privacy]"),
        "fields": params.get_indexed("fields_attributes"),
        "limit": params.get_int("limit"),
        "file": len(await upload.read()) if upload else None,
    })


@pytest.fixture
async def api() -> httpx.AsyncClient:
    app = Starlette(routes=[Route("/api/v1/echo", echo, methods=["GET", "POST"]),
                            Route("/api/v1/media", echo, methods=["POST"])],
                    middleware=[Middleware(BodyLimitMiddleware), Middleware(CloseUploadsMiddleware)],
                    exception_handlers=EXCEPTION_HANDLERS)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                 base_url="https://easel.test") as client:
        yield client


EXPECTED: dict[str, Any] = {
    "status": "hello", "sensitive": True, "media_ids": ["1", "2"], "privacy": "private",
    "fields": [{"name": "Site", "value": "https://a.example"}, {"name": "Shop", "value": "b"}],
    "limit": 5, "file": None,
}


async def test_form_and_json_bodies_read_the_same(api: httpx.AsyncClient) -> None:
    form = await api.post("/api/v1/echo?limit=5", data={
        "status": "hello", "sensitive": "1", "media_ids[]": ["1", "2"], "source[privacy]": "private",
        "fields_attributes[0][name]": "Site", "fields_attributes[0][value]": "https://a.example",
        "fields_attributes[1][name]": "Shop", "fields_attributes[1][value]": "b"})
    as_json = await api.post("/api/v1/echo?limit=5", json={
        "status": "hello", "sensitive": True, "media_ids": [1, 2], "source": {"privacy": "private"},
        "fields_attributes": [{"name": "Site", "value": "https://a.example"},
                              {"name": "Shop", "value": "b"}]})
    bracketless = await api.post("/api/v1/echo?limit=5", content=(
        "status=hello&sensitive=true&media_ids[]=1&media_ids[]=2&source[privacy]=private"
        "&fields_attributes[][name]=Site&fields_attributes[][value]=https://a.example"
        "&fields_attributes[][name]=Shop&fields_attributes[][value]=b"),
        headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert form.json() == as_json.json() == bracketless.json() == EXPECTED


async def test_multipart_with_a_file_part_is_read_and_its_file_closed(api: httpx.AsyncClient) -> None:
    response = await api.post("/api/v1/echo", data={"status": "hi"},
                              files={"file": ("a.bin", b"12345", "application/octet-stream")})
    assert response.status_code == 200
    assert response.json()["file"] == 5  # and no ResourceWarning: warnings are errors here


async def test_a_json_null_list_is_an_empty_list(api: httpx.AsyncClient) -> None:
    # Swift and JS clients write null for an empty list (Rails reads it as nothing).
    for body, read in (({"media_ids": None}, []), ({"media_ids": [None, 3]}, ["3"])):
        response = await api.post("/api/v1/echo", json=body)
        assert response.status_code == 200, response.text
        assert response.json()["media_ids"] == read


@pytest.mark.parametrize(("body", "status", "message"), [
    (b"{not json", 400, "Malformed JSON body"),
    (b"[1, 2]", 400, "The JSON body must be an object"),
    (b'{"status": ["a", "b"]}', 200, None),
    (b'{"status": {"text": "a"}}', 200, None),
    (b'{"sensitive": "maybe"}', 422, "Validation failed: sensitive must be true or false"),
    (b'{"limit": "ten"}', 422, "Validation failed: limit must be a number"),
    (b'{"limit": [1, 2]}', 422, "Validation failed: limit must be a single value"),
])
async def test_wrong_types_are_clear_client_errors(
    api: httpx.AsyncClient, body: bytes, status: int, message: str | None
) -> None:
    response = await api.post("/api/v1/echo", content=body,
                              headers={"Content-Type": "application/json"})
    assert response.status_code == status, response.text
    if message:
        assert response.json() == {"error": message}


async def test_a_declared_oversized_body_is_refused_before_it_is_read(api: httpx.AsyncClient) -> None:
    response = await api.post("/api/v1/echo", content=b"x" * (1024 * 1024 + 1),
                              headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert response.status_code == 413
    assert "too large" in response.json()["error"]


async def test_a_streamed_oversized_upload_is_cut_off(api: httpx.AsyncClient) -> None:
    async def chunks():  # type: ignore[no-untyped-def]
        boundary = b"--b\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a\"\r\n\r\n"
        yield boundary
        for _ in range(40):
            yield b"x" * (1024 * 1024)
        yield b"\r\n--b--\r\n"

    response = await api.post("/api/v1/media", content=chunks(),
                              headers={"Content-Type": "multipart/form-data; boundary=b"})
    assert response.status_code == 413


async def test_bracketless_entries_start_anew_when_a_key_repeats_as_in_rails(
    api: httpx.AsyncClient
) -> None:
    # Rails reads a[][k] in order: a key the current entry already has starts the next
    # one (not "the n-th value of each key belongs to the n-th entry").
    response = await api.post("/api/v1/echo", content=(
        "fields_attributes[][name]=1&fields_attributes[][focus]=0.5,0.5"
        "&fields_attributes[][name]=2&fields_attributes[][description]=x"),
        headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert response.json()["fields"] == [{"name": "1", "focus": "0.5,0.5"},
                                         {"name": "2", "description": "x"}]
    in_query = await api.get("/api/v1/echo?fields_attributes[][name]=a"
                             "&fields_attributes[][name]=b&fields_attributes[][value]=c")
    assert in_query.json()["fields"] == [{"name": "a"}, {"name": "b", "value": "c"}]
