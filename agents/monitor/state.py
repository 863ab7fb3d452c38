"""What the monitor page shows, built from trace records.

:class:`MonitorState` is fed the records of a run in time order, live from a bus tap or
read back from a trace file, and answers the page's questions: the snapshot (agents and
their state, the LLM gateway, the bus, the dead letters), the recent messages with filters,
and one message with its causation chain. One implementation serves both the live view and
the replay of a recording, so they cannot disagree.

Everything it keeps is bounded: the messages in a ring (``keep``), the open requests and the
conversation index by count, latencies and rate windows by time.
"""

from __future__ import annotations

import bisect
from collections import OrderedDict, deque
from typing import Any

from bus import matches
from bus.trace import TraceRecord, visible

from ..describe import actor, agent_of_subject, describe, is_error, target

Rec = dict[str, Any]

RATE_WINDOW = 5.0  # seconds: messages/s and calls/s are averaged over this
LATENCIES_KEPT = 2048
DEAD_LETTERS_KEPT = 100
OPEN_REQUESTS_KEPT = 20_000  # a request never answered is forgotten past this many
CONVERSATIONS_KEPT = 200_000


# What an agent is doing while its request to this lane is open.
_BUSY = {"llm": "thinking", "tools": "tools", "memory": "memory"}


# Agent events whose error is already counted from the reply (or the task's end) they report.
_COUNTED_FROM_REPLIES = frozenset({"failed", "tool_answered", "llm_answered"})


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _num(value: Any) -> float:
    """A number from a payload, or 0 for anything else (a service's own reply may carry a
    field of the same name and another type)."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        return value
    return 0


class _Agent:
    __slots__ = (
        "active",
        "cost",
        "errors",
        "flying",
        "last",
        "name",
        "since",
        "state",
        "steps",
        "tasks",
        "tokens",
    )

    def __init__(self, name: str, at: float) -> None:
        self.name = name
        self.state = "idle"
        self.since = at
        self.tasks = self.active = self.steps = self.tokens = self.errors = 0
        self.cost = 0.0
        self.last = ""
        self.flying = {"thinking": 0, "tools": 0, "memory": 0}

    def settle(self, at: float) -> None:
        """Set the state from what is in flight (the busiest kind wins)."""
        state = next((kind for kind, n in self.flying.items() if n > 0), None)
        if state is None:
            state = self.state if self.state in ("done", "failed") else "idle"
            if self.active and state == "idle":
                state = "thinking"
        if state != self.state:
            self.state, self.since = state, at

    def row(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "state": self.state,
            "since": self.since,
            "tasks": self.tasks,
            "steps": self.steps,
            "tokens": self.tokens,
            "cost": round(self.cost, 6),
            "errors": self.errors,
            "last": self.last,
        }


class _Rate:
    """Counts per second over the last :data:`RATE_WINDOW` seconds of record time."""

    __slots__ = ("buckets",)

    def __init__(self) -> None:
        self.buckets: deque[list[float]] = deque()  # [second, count]

    def add(self, at: float, n: int = 1) -> None:
        second = float(int(at))
        if self.buckets and self.buckets[-1][0] == second:
            self.buckets[-1][1] += n
        else:
            self.buckets.append([second, n])
            while self.buckets and self.buckets[0][0] <= second - RATE_WINDOW - 1:
                self.buckets.popleft()

    def per_second(self, now: float) -> float:
        floor = now - RATE_WINDOW
        total = sum(n for second, n in self.buckets if second + 1 > floor and second <= now)
        return total / RATE_WINDOW


def model_row(model: str) -> dict[str, Any]:
    """A model's line in the gateway panel, at zero."""
    return {"model": model, "calls": 0, "prompt_tokens": 0, "completion_tokens": 0, "cost": 0.0}


class _Gateway:
    __slots__ = ("calls", "failed", "latencies", "models", "rate", "succeeded")

    def __init__(self) -> None:
        self.calls = self.succeeded = self.failed = 0
        self.latencies: deque[float] = deque(maxlen=LATENCIES_KEPT)
        self.models: dict[str, dict[str, Any]] = {}
        self.rate = _Rate()

    def answered(self, payload: Any, error: bool, latency: float) -> None:
        self.latencies.append(latency)
        if error or not isinstance(payload, dict):
            self.failed += 1
            return
        self.succeeded += 1
        model = str(payload.get("model") or "?")
        row = self.models.setdefault(model, model_row(model))
        usage = _dict(payload.get("usage"))
        row["calls"] += 1
        row["prompt_tokens"] += int(_num(usage.get("prompt_tokens")))
        row["completion_tokens"] += int(_num(usage.get("completion_tokens")))
        row["cost"] += float(_num(payload.get("cost")))

    def row(self, now: float, in_flight: int) -> dict[str, Any]:
        ordered = sorted(self.latencies)
        latency = None
        if ordered:
            last = len(ordered) - 1
            latency = {
                f"p{q}": round(ordered[min(last, len(ordered) * q // 100)] * 1e3, 3)
                for q in (50, 90, 99)
            }
        return {
            "in_flight": in_flight,
            "queued": 0,
            "calls": self.calls,
            "succeeded": self.succeeded,
            "failed": self.failed,
            "rate": self.rate.per_second(now),
            "latency_ms": latency,
            "retries": {},
            "failures": {},
            "models": sorted(self.models.values(), key=lambda m: -m["calls"]),
        }


def lane_of(record: TraceRecord) -> str:
    """The lane a request or event goes to: an agent, ``llm``, ``tools``, ``memory``, the
    service a request names (``chat.review`` for ``chat.review.inbox``); "" for an event
    on a subject of no one in particular (drawn on its sender's lane)."""
    to = target(record)
    if to != visible(record.subject):
        return to
    if record.kind != "request":
        return ""
    parts = record.subject.split(".")
    return visible(".".join(parts[:-1]) if len(parts) > 2 else record.subject)


def conversation_of(record: TraceRecord) -> str | None:
    """The conversation a record names itself, if any (a task's, an event's, memory's)."""
    payload = record.payload
    if isinstance(payload, dict):
        conversation = payload.get("conversation_id")
        if isinstance(conversation, str) and conversation:
            return conversation
    if record.kind == "request" and record.subject.startswith("agent."):
        return record.id  # a new task: its id becomes its conversation's
    return None


class MonitorState:
    """The page's model of a run (see the module's docstring)."""

    def __init__(self, *, keep: int = 5000) -> None:
        self.records: deque[Rec] = deque(maxlen=keep)
        self.by_id: dict[str, Rec] = {}
        self.agents: dict[str, _Agent] = {}
        self.lanes: dict[str, None] = {}
        self.subjects: dict[str, list[Any]] = {}  # subject -> [count, _Rate]
        self.dead_letters: deque[dict[str, Any]] = deque(maxlen=DEAD_LETTERS_KEPT)
        self.gateway = _Gateway()
        self.rate = _Rate()
        self.messages = self.errors = 0
        self.dead_lettered = 0
        self.first: float | None = None
        self.last = 0.0
        # open request id -> (its subject, lanes, agent and conversation; when it was sent)
        self._open: OrderedDict[str, tuple[Rec, float]] = OrderedDict()
        self._conversations: OrderedDict[str, str] = OrderedDict()  # message id -> conversation

    # -- feeding -----------------------------------------------------------------------------

    def feed(self, record: TraceRecord) -> Rec:
        """Take one record (in time order); return its wire form for the page."""
        at = record.timestamp
        if self.first is None:
            self.first = at
        self.last = max(self.last, at)
        self.messages += 1
        self.rate.add(at)
        subject = record.subject if record.kind != "reply" else "(replies)"
        counter = self.subjects.get(subject)
        if counter is None:
            counter = self.subjects[subject] = [0, _Rate()]
        counter[0] += 1
        counter[1].add(at)
        request = (
            self._open.pop(record.correlation_id or "", None) if record.kind == "reply" else None
        )
        rec = self._wire(record, request[0] if request else None)
        self._keep(rec)
        if record.kind == "request":  # (what a reply needs of it: not its payload)
            asked = {k: rec[k] for k in ("subject", "from", "to", "agent", "conversation")}
            self._open[record.id] = (asked, at)
            if len(self._open) > OPEN_REQUESTS_KEPT:
                self._open.popitem(last=False)
        self._account(record, rec, request)
        return rec

    def _wire(self, record: TraceRecord, request: Rec | None) -> Rec:
        sender = actor(record.sender)
        if record.kind == "reply":  # back along the request's arrow
            sender = request["to"] if request is not None else sender
            to = request["from"] if request is not None else ""  # (its request unseen)
            agent = request["agent"] if request is not None else None
        elif record.type == "AgentEvent":
            to, agent = "", agent_of_subject(record.subject)
            sender = agent or sender
        else:
            to = lane_of(record)
            agent = agent_of_subject(record.subject) or (sender if sender in self.agents else None)
        conversation = conversation_of(record)
        if conversation is None:
            parent = record.correlation_id if record.kind == "reply" else record.causation_id
            conversation = self._conversations.get(parent or "")
        if conversation is not None:
            self._conversations[record.id] = conversation
            if len(self._conversations) > CONVERSATIONS_KEPT:
                self._conversations.popitem(last=False)
        for lane in (sender, to):
            if lane and lane not in self.lanes:
                self.lanes[lane] = None
        error = is_error(record)
        self.errors += error
        return {
            "id": record.id,
            "subject": record.subject,
            "kind": record.kind,
            "type": record.type,
            "sender": record.sender,
            "timestamp": record.timestamp,
            "correlation_id": record.correlation_id,
            "causation_id": record.causation_id,
            "reply_to": record.reply_to,
            "headers": record.headers,
            "payload": record.payload,
            "from": sender,
            "to": to,
            "agent": agent,
            "conversation": conversation,
            "summary": describe(record),
            "error": error,
        }

    def _keep(self, rec: Rec) -> None:
        if len(self.records) == self.records.maxlen:
            self.by_id.pop(self.records[0]["id"], None)
        self.records.append(rec)
        self.by_id[rec["id"]] = rec

    def _agent(self, name: str, at: float) -> _Agent:
        agent = self.agents.get(name)
        if agent is None:
            agent = self.agents[name] = _Agent(name, at)
        return agent

    def _account(self, record: TraceRecord, rec: Rec, request: tuple[Rec, float] | None) -> None:
        at = record.timestamp
        payload = record.payload if isinstance(record.payload, dict) else {}
        if record.type == "DeadLetter":
            self._dead_letter(rec, payload)
        if record.kind == "request":
            self._requested(record, rec, at)
        elif record.kind == "reply" and request is not None:
            self._answered(rec, request, payload, at)
        elif record.type == "AgentEvent" and rec["agent"]:
            self._agent_event(self._agent(rec["agent"], at), payload, rec, at)

    def _requested(self, record: TraceRecord, rec: Rec, at: float) -> None:
        inbox = agent_of_subject(record.subject)
        if inbox is not None and record.subject.endswith(".inbox"):
            agent = self._agent(inbox, at)
            agent.tasks += 1
            agent.active += 1
            agent.last = rec["summary"]
            agent.settle(at)
            return
        if record.subject == "llm.chat":
            self.gateway.calls += 1
            self.gateway.rate.add(at)
        kind = _BUSY.get(rec["to"])
        caller = self.agents.get(rec["from"])
        if kind is not None and caller is not None:
            caller.flying[kind] += 1
            caller.settle(at)

    def _answered(
        self, rec: Rec, request: tuple[Rec, float], payload: dict[str, Any], at: float
    ) -> None:
        asked, since = request
        if asked["subject"] == "llm.chat":
            self.gateway.answered(payload, rec["error"], at - since)
        caller = self.agents.get(asked["from"])
        kind = _BUSY.get(asked["to"])
        if caller is not None and kind is not None:
            caller.flying[kind] = max(0, caller.flying[kind] - 1)
            if kind == "thinking" and not rec["error"]:
                caller.tokens += int(_num(_dict(payload.get("usage")).get("total_tokens")))
                caller.cost += float(_num(payload.get("cost")))
            caller.errors += rec["error"]
            caller.settle(at)
        inbox = agent_of_subject(asked["subject"])
        if inbox is not None and asked["subject"].endswith(".inbox"):
            agent = self._agent(inbox, at)
            agent.active = max(0, agent.active - 1)
            if rec["error"]:
                agent.errors += 1
                agent.state, agent.since = "failed", at
            elif not agent.active:
                agent.state, agent.since = "done", at
            if not agent.active:  # nothing of its can still be in flight
                agent.flying = dict.fromkeys(agent.flying, 0)
            agent.last = rec["summary"]
            agent.settle(at)

    def _agent_event(self, agent: _Agent, payload: dict[str, Any], rec: Rec, at: float) -> None:
        kind = payload.get("kind")
        if kind == "step_started":
            agent.steps += 1
        elif payload.get("is_error") and kind not in _COUNTED_FROM_REPLIES:
            agent.errors += 1
        agent.last = rec["summary"]

    def _dead_letter(self, rec: Rec, payload: dict[str, Any]) -> None:
        self.dead_lettered += 1
        envelope = _dict(payload.get("envelope"))
        error = payload.get("error_type")
        if error and payload.get("error_message"):
            error = f"{error}: {payload['error_message']}"
        self.dead_letters.appendleft(
            {
                "id": rec["id"],
                "subject": str(envelope.get("subject", "?")),
                "reason": str(payload.get("reason", "?")),
                "subscription": str(payload.get("subscription", "")),
                "error": error,
                "timestamp": rec["timestamp"],
            }
        )

    # -- questions ---------------------------------------------------------------------------

    def snapshot(self, now: float | None = None) -> dict[str, Any]:
        """The page's snapshot at ``now`` (default: the last record's time)."""
        now = self.last if now is None else now
        in_flight = sum(1 for rec, _ in self._open.values() if rec["subject"] == "llm.chat")
        subjects = sorted(
            (
                {"subject": subject, "count": c[0], "rate": c[1].per_second(now)}
                for subject, c in self.subjects.items()
            ),
            key=lambda s: (-s["rate"], -s["count"]),
        )
        return {
            "t": now,
            "agents": [agent.row() for agent in self.agents.values()],
            "gateway": self.gateway.row(now, in_flight) if self.gateway.calls else None,
            "bus": {
                "messages": self.messages,
                "rate": self.rate.per_second(now),
                "subjects": subjects,
                "subscriptions": [],
                "dropped": 0,
                "failed": 0,
                "dead_lettered": self.dead_lettered,
                "in_flight": len(self._open),
            },
            "dead_letters": list(self.dead_letters),
            "lanes": list(self.lanes),
        }

    def select(
        self,
        *,
        until: float | None = None,
        limit: int = 300,
        agent: str | None = None,
        subject: str | None = None,
        conversation: str | None = None,
    ) -> tuple[list[Rec], int]:
        """The last ``limit`` kept records at or before ``until`` that pass the filters, and
        how many pass in all."""
        records = list(self.records)
        if until is not None:
            records = records[: bisect.bisect_right(records, until, key=lambda r: r["timestamp"])]
        chosen = [r for r in records if passes(r, agent, subject, conversation)]
        return chosen[-limit:] if limit > 0 else [], len(chosen)

    def message(self, message_id: str) -> dict[str, Any] | None:
        """One kept record, its causation chain (root first) and the replies to it."""
        rec = self.by_id.get(message_id)
        if rec is None:
            return None
        chain = [rec]
        seen = {message_id}
        parent = rec["causation_id"]
        while parent and parent not in seen and parent in self.by_id:
            seen.add(parent)
            chain.append(self.by_id[parent])
            parent = self.by_id[parent]["causation_id"]
        replies = [
            r for r in self.records if r["kind"] == "reply" and r["correlation_id"] == message_id
        ]
        return {"record": rec, "chain": chain[::-1], "replies": replies}


def passes(rec: Rec, agent: str | None, subject: str | None, conversation: str | None) -> bool:
    """Whether ``rec`` passes the page's filters (each optional)."""
    if agent and rec["agent"] != agent:
        return False
    if conversation and rec["conversation"] != conversation:
        return False
    if subject:
        if "*" in subject or ">" in subject:
            try:
                return matches(subject, rec["subject"])
            except ValueError:
                return False
        return subject in rec["subject"]
    return True
