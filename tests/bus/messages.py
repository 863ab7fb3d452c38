"""Message types and topics shared by the bus tests."""

from __future__ import annotations

from bus import Message, Topic


class Ping(Message, frozen=True, kw_only=True):
    n: int


class Pong(Message, frozen=True, kw_only=True):
    n: int


class Other(Message, frozen=True, kw_only=True):
    text: str = ""


PING = Topic("test.ping", Ping)
RPC = Topic("test.rpc", Ping, reply=Pong)
