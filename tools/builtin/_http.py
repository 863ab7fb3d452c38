"""``http_get``: fetch a web page from an allowlisted host, with size and time caps.

The host is checked before any connection, and again on every redirect (which are
followed one by one, never by the client). URLs are parsed with yarl, the parser aiohttp
connects with, so the host checked is the host contacted.
"""

from __future__ import annotations

import codecs
from collections.abc import Coroutine, Iterable
from typing import Any

import aiohttp
import anyio
import msgspec
from yarl import URL

from .._tool import Tool, tool

_REDIRECTS = frozenset({301, 302, 303, 307, 308})
_CHUNK = 65_536


class HttpResponse(msgspec.Struct, frozen=True, kw_only=True):
    """What ``http_get`` returns: the final URL, its status, content type and text."""

    url: str
    status: int
    content_type: str
    body: str


def http_get_tool(
    allow_hosts: Iterable[str],
    *,
    max_bytes: int = 1_000_000,
    timeout: float = 10.0,
    max_redirects: int = 5,
) -> Tool[[str], Coroutine[Any, Any, HttpResponse]]:
    """The tool ``http_get``, allowed to contact only ``allow_hosts`` (exact host names or
    IP addresses, any port), over http or https.

    A body over ``max_bytes`` (after decompression) is refused, and so is a fetch taking
    more than ``timeout`` seconds in total, redirects included.
    """
    allowed = frozenset(
        URL.build(scheme="http", host=host.strip()).raw_host for host in allow_hosts
    )
    if not allowed:
        raise ValueError("http_get needs at least one allowed host")
    hosts = ", ".join(sorted(str(host) for host in allowed))

    # the executor's limit is a backstop: the fetch's own, reported by host, comes first
    @tool(
        name="http_get",
        description=f"Fetch a URL with HTTP GET; returns its status and text. Hosts: {hosts}.",
        timeout=timeout + 1.0,
    )
    async def http_get(url: str) -> HttpResponse:
        target = _allowed(URL(url), allowed, hosts)
        try:
            with anyio.fail_after(timeout):
                return await _fetch(target, allowed, hosts, max_bytes, max_redirects)
        except TimeoutError:
            raise TimeoutError(f"GET {url} took longer than the limit of {timeout:g}s") from None
        except aiohttp.ClientError as exc:
            raise ConnectionError(f"GET {url} failed: {exc}") from None

    return http_get


def _allowed(url: URL, allowed: frozenset[str | None], hosts: str) -> URL:
    if url.scheme not in ("http", "https"):
        raise ValueError(f"only http and https URLs can be fetched, not {str(url)!r}")
    if url.raw_host not in allowed:
        raise PermissionError(
            f"host {url.raw_host!r} is not allowed; the allowed hosts are: {hosts}"
        )
    return url


async def _fetch(
    url: URL, allowed: frozenset[str | None], hosts: str, max_bytes: int, max_redirects: int
) -> HttpResponse:
    async with aiohttp.ClientSession() as session:
        for _ in range(max_redirects + 1):
            async with session.get(url, allow_redirects=False) as response:
                location = response.headers.get("Location")
                if response.status in _REDIRECTS and location is not None:
                    url = _allowed(url.join(URL(location)), allowed, hosts)
                    continue
                body = await _read(response, max_bytes)
                return HttpResponse(
                    url=str(url),
                    status=response.status,
                    content_type=response.content_type,
                    body=body.decode(_charset(response), errors="replace"),
                )
    raise ValueError(f"more than {max_redirects} redirects; the last one led to {str(url)!r}")


async def _read(response: aiohttp.ClientResponse, max_bytes: int) -> bytes:
    """The body, read in chunks so that an oversized one is refused once past the cap."""
    chunks: list[bytes] = []
    size = 0
    async for chunk in response.content.iter_chunked(_CHUNK):
        size += len(chunk)
        if size > max_bytes:
            raise ValueError(f"the response body is larger than the limit of {max_bytes} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


def _charset(response: aiohttp.ClientResponse) -> str:
    charset = response.charset or "utf-8"
    try:
        codecs.lookup(charset)
    except LookupError:  # a charset Python does not know: utf-8 with replacements
        return "utf-8"
    return charset
