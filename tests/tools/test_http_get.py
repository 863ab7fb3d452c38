"""``http_get`` against a real aiohttp server on 127.0.0.1: allowlist, redirects, caps."""

from __future__ import annotations

import asyncio
import gzip
import time
from collections.abc import AsyncIterator, Awaitable, Callable

import msgspec
import pytest
from aiohttp import web

from bus import Bus
from tools import TOOL_CALL, HttpResponse, ToolCallRequest, ToolExecutor, http_get_tool

pytestmark = pytest.mark.anyio


class Server:
    """A test server on an ephemeral port that counts the requests it gets."""

    def __init__(self, url: str, hits: list[str]) -> None:
        self.url = url
        self.hits = hits


async def _hello(request: web.Request) -> web.Response:
    return web.Response(text="hello", content_type="text/plain")


async def _sized(request: web.Request) -> web.Response:
    return web.Response(body=b"x" * int(request.match_info["size"]))


async def _latin1(request: web.Request) -> web.Response:
    return web.Response(body="café".encode("latin-1"), content_type="text/html", charset="latin-1")


async def _gzip_bomb(request: web.Request) -> web.Response:
    body = gzip.compress(b"0" * 50_000)
    return web.Response(body=body, headers={"Content-Encoding": "gzip"})


async def _slow(request: web.Request) -> web.Response:
    await asyncio.sleep(5)
    return web.Response(text="late")


async def _trickle(request: web.Request) -> web.StreamResponse:
    response = web.StreamResponse()
    await response.prepare(request)
    for _ in range(50):
        await response.write(b"drip ")
        await asyncio.sleep(0.1)
    return response


async def _missing(request: web.Request) -> web.Response:
    return web.Response(status=404, text="no such page")


def _redirect(location: str) -> Callable[[web.Request], Awaitable[web.Response]]:
    async def handle(request: web.Request) -> web.Response:
        return web.Response(status=302, headers={"Location": location})

    return handle


async def _to_localhost(request: web.Request) -> web.Response:
    """This server again, by a name that is not on the allowlist."""
    return web.Response(
        status=302, headers={"Location": f"http://localhost:{request.url.port}/hello"}
    )


@pytest.fixture
async def server() -> AsyncIterator[Server]:
    hits: list[str] = []

    @web.middleware
    async def count(
        request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        hits.append(request.path)
        return await handler(request)

    app = web.Application(middlewares=[count])
    app.router.add_get("/hello", _hello)
    app.router.add_get("/sized/{size}", _sized)
    app.router.add_get("/latin1", _latin1)
    app.router.add_get("/gzip", _gzip_bomb)
    app.router.add_get("/slow", _slow)
    app.router.add_get("/trickle", _trickle)
    app.router.add_get("/missing", _missing)
    app.router.add_get("/to-hello", _redirect("/hello"))
    app.router.add_get("/to-outside", _redirect("http://example.com/"))
    app.router.add_get("/to-localhost", _to_localhost)
    app.router.add_get("/loop", _redirect("/loop"))
    runner = web.AppRunner(app, handler_cancellation=True, shutdown_timeout=1)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    host, port = runner.addresses[0][:2]
    try:
        yield Server(f"http://{host}:{port}", hits)
    finally:
        await runner.cleanup()


async def test_a_page_on_an_allowed_host_is_fetched(server: Server) -> None:
    http_get = http_get_tool(["127.0.0.1"])
    response = await http_get(server.url + "/hello")
    assert response == HttpResponse(
        url=server.url + "/hello", status=200, content_type="text/plain", body="hello"
    )


async def test_an_error_status_is_a_response_the_model_can_read(server: Server) -> None:
    response = await http_get_tool(["127.0.0.1"])(server.url + "/missing")
    assert (response.status, response.body) == (404, "no such page")


async def test_the_body_is_decoded_with_its_charset(server: Server) -> None:
    response = await http_get_tool(["127.0.0.1"])(server.url + "/latin1")
    assert response.body == "café"


async def test_a_host_not_allowed_is_refused_without_connecting(server: Server) -> None:
    http_get = http_get_tool(["127.0.0.1"])
    # localhost is this very server, by another name: still refused, and never contacted
    with pytest.raises(
        PermissionError, match=r"host 'localhost' is not allowed; the allowed hosts are: 127.0.0.1"
    ):
        await http_get(server.url.replace("127.0.0.1", "localhost") + "/hello")
    started = time.perf_counter()
    with pytest.raises(PermissionError, match=r"host 'example.com' is not allowed"):
        await http_get("http://example.com/")
    assert time.perf_counter() - started < 0.1
    assert server.hits == []


@pytest.mark.parametrize(
    ("url", "host"),
    [
        ("http://127.0.0.1@evil.example/", "evil.example"),
        ("http://evil.example#@127.0.0.1/", "evil.example"),
        ("http://127.0.0.1.evil.example/", "127.0.0.1.evil.example"),
        ("http://[::1]/", "::1"),
    ],
)
async def test_urls_that_dress_up_another_host_are_refused(url: str, host: str) -> None:
    with pytest.raises(PermissionError, match=rf"host '{host}' is not allowed"):
        await http_get_tool(["127.0.0.1"])(url)


@pytest.mark.parametrize(
    "url", ["file:///etc/passwd", "ftp://127.0.0.1/", "127.0.0.1/hello", "gopher://127.0.0.1"]
)
async def test_only_http_and_https_urls_are_fetched(url: str) -> None:
    with pytest.raises(ValueError, match=r"only http and https URLs can be fetched"):
        await http_get_tool(["127.0.0.1"])(url)


async def test_allowed_host_names_are_compared_case_insensitively(server: Server) -> None:
    http_get = http_get_tool(["LOCALHOST"])
    response = await http_get(server.url.replace("127.0.0.1", "LocalHost") + "/hello")
    assert response.body == "hello"


async def test_a_redirect_to_an_allowed_host_is_followed(server: Server) -> None:
    response = await http_get_tool(["127.0.0.1"])(server.url + "/to-hello")
    assert (response.url, response.body) == (server.url + "/hello", "hello")
    assert server.hits == ["/to-hello", "/hello"]


async def test_a_redirect_to_a_host_not_allowed_is_refused_before_following(server: Server) -> None:
    http_get = http_get_tool(["127.0.0.1"])
    with pytest.raises(PermissionError, match=r"host 'example.com' is not allowed"):
        await http_get(server.url + "/to-outside")
    with pytest.raises(PermissionError, match=r"host 'localhost' is not allowed"):
        await http_get(server.url + "/to-localhost")
    assert server.hits == ["/to-outside", "/to-localhost"]


async def test_redirects_are_bounded(server: Server) -> None:
    http_get = http_get_tool(["127.0.0.1"], max_redirects=3)
    with pytest.raises(ValueError, match=r"more than 3 redirects; the last one led to .*/loop"):
        await http_get(server.url + "/loop")
    assert server.hits == ["/loop"] * 4


async def test_a_body_over_the_cap_is_refused_and_one_at_the_cap_is_not(server: Server) -> None:
    http_get = http_get_tool(["127.0.0.1"], max_bytes=1_000)
    assert len((await http_get(server.url + "/sized/1000")).body) == 1_000
    with pytest.raises(ValueError, match=r"larger than the limit of 1000 bytes"):
        await http_get(server.url + "/sized/200000")


async def test_the_cap_applies_to_the_decompressed_body(server: Server) -> None:
    http_get = http_get_tool(["127.0.0.1"], max_bytes=10_000)
    with pytest.raises(ValueError, match=r"larger than the limit of 10000 bytes"):
        await http_get(server.url + "/gzip")


async def test_a_slow_answer_is_cut_off_at_the_time_cap(server: Server) -> None:
    http_get = http_get_tool(["127.0.0.1"], timeout=0.2)
    started = time.perf_counter()
    with pytest.raises(TimeoutError, match=r"GET .*/slow took longer than the limit of 0.2s"):
        await http_get(server.url + "/slow")
    assert time.perf_counter() - started < 1.5


async def test_the_time_cap_covers_a_body_that_trickles_in(server: Server) -> None:
    http_get = http_get_tool(["127.0.0.1"], timeout=0.3)
    with pytest.raises(TimeoutError, match=r"/trickle took longer than the limit of 0.3s"):
        await http_get(server.url + "/trickle")


async def test_a_connection_failure_is_a_connection_error_naming_the_url() -> None:
    http_get = http_get_tool(["127.0.0.1"])
    with pytest.raises(ConnectionError, match=r"GET http://127.0.0.1:1/ failed: "):
        await http_get("http://127.0.0.1:1/")


def test_an_empty_allowlist_is_refused() -> None:
    with pytest.raises(ValueError, match=r"at least one allowed host"):
        http_get_tool([])


def test_the_model_is_told_which_hosts_it_may_fetch() -> None:
    http_get = http_get_tool(["b.example", "a.example"], timeout=4)
    assert http_get.name == "http_get"
    assert http_get.description.endswith("Hosts: a.example, b.example.")
    assert http_get.parameters["required"] == ["url"]
    assert http_get.timeout == 5.0  # the executor's backstop, past the fetch's own cap


async def test_through_the_executor_results_and_refusals(bus: Bus, server: Server) -> None:
    await bus.add(ToolExecutor([http_get_tool(["127.0.0.1"], max_bytes=100)]))

    async def fetch(url: str) -> tuple[str, bool]:
        arguments = msgspec.json.encode({"url": url}).decode()
        request = ToolCallRequest(call_id="h", name="http_get", arguments=arguments)
        result = await bus.request(TOOL_CALL, request)
        return result.content, result.is_error

    content, is_error = await fetch(server.url + "/hello")
    assert not is_error
    assert msgspec.json.decode(content, type=HttpResponse).body == "hello"
    assert await fetch("http://example.com/") == (
        "tool 'http_get' raised PermissionError: host 'example.com' is not allowed; "
        "the allowed hosts are: 127.0.0.1",
        True,
    )
    content, is_error = await fetch(server.url + "/sized/101")
    assert is_error
    assert content == (
        "tool 'http_get' raised ValueError: the response body is larger than the limit of 100 bytes"
    )
