"""When a group chat stops: conditions over its state, composed with ``&`` and ``|``.

A condition looks at a :class:`ChatState` after each turn and returns why the chat should
stop (a short reason, which becomes ``GroupChatResult.stop_reason``) or None. Conditions
keep no state of their own, so one instance serves every run of a chat, concurrent ones
included. ``a | b`` stops when either is met, ``a & b`` when both are.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from ..llm.wire import Usage
from .messages import Utterance


@dataclass(frozen=True, slots=True, kw_only=True)
class ChatState:
    """A chat so far: what was said (the task first), the tokens and cost (USD) used by
    the participants and the selector, and the seconds since it started."""

    chat: str
    participants: tuple[str, ...]
    messages: Sequence[Utterance]
    usage: Usage
    cost: float
    elapsed: float

    @property
    def turns(self) -> int:
        """How many times a participant spoke."""
        return len(self.messages) - 1

    @property
    def last(self) -> Utterance:
        """The last thing said (the task, before anyone spoke)."""
        return self.messages[-1]


class TerminationCondition:
    """Base of the conditions: :meth:`check` after each turn; :meth:`time_left` lets the
    chat interrupt a turn when the condition is a deadline."""

    def check(self, state: ChatState) -> str | None:
        """Why the chat should stop now, or None to go on."""
        raise NotImplementedError

    def time_left(self, state: ChatState) -> float | None:
        """Seconds until this condition is met by time alone; None if time does not
        meet it."""
        return None

    def __or__(self, other: TerminationCondition) -> TerminationCondition:
        return AnyOf(self, other)

    def __and__(self, other: TerminationCondition) -> TerminationCondition:
        return AllOf(self, other)


class _Composite(TerminationCondition):
    conditions: tuple[TerminationCondition, ...]

    def __init__(self, *conditions: TerminationCondition) -> None:
        if not conditions:
            raise ValueError(f"{type(self).__name__} needs at least one condition")
        flat: list[TerminationCondition] = []
        for condition in conditions:
            if not isinstance(condition, TerminationCondition):
                raise TypeError(f"not a termination condition: {condition!r}")
            if isinstance(condition, _Composite) and type(condition) is type(self):
                flat.extend(condition.conditions)
            else:
                flat.append(condition)
        self.conditions = tuple(flat)


class AnyOf(_Composite):
    """Met when any of ``conditions`` is (``a | b``); the reason is the first met."""

    def check(self, state: ChatState) -> str | None:
        for condition in self.conditions:
            reason = condition.check(state)
            if reason is not None:
                return reason
        return None

    def time_left(self, state: ChatState) -> float | None:
        times = [t for c in self.conditions if (t := c.time_left(state)) is not None]
        return min(times) if times else None

    def __repr__(self) -> str:
        return "(" + " | ".join(map(repr, self.conditions)) + ")"


class AllOf(_Composite):
    """Met when every one of ``conditions`` is (``a & b``); the reasons joined."""

    def check(self, state: ChatState) -> str | None:
        reasons = [condition.check(state) for condition in self.conditions]
        met = [reason for reason in reasons if reason is not None]
        return " and ".join(met) if len(met) == len(reasons) else None

    def time_left(self, state: ChatState) -> float | None:
        # Parts already met wait for nothing: the time the others need is what is left.
        pending = [c for c in self.conditions if c.check(state) is None]
        times = [t for c in pending if (t := c.time_left(state)) is not None]
        return max(times) if pending and len(times) == len(pending) else None

    def __repr__(self) -> str:
        return "(" + " & ".join(map(repr, self.conditions)) + ")"


class MaxMessages(TerminationCondition):
    """Met once the participants have said ``count`` messages (the task not counted)."""

    def __init__(self, count: int) -> None:
        if count < 1:
            raise ValueError(f"MaxMessages needs a count >= 1, got {count}")
        self.count = count

    def check(self, state: ChatState) -> str | None:
        if state.turns >= self.count:
            return f"max_messages: {state.turns} messages"
        return None

    def __repr__(self) -> str:
        return f"MaxMessages({self.count})"


class TextMention(TerminationCondition):
    """Met when the last message contains ``text`` (case-sensitive), said by one of
    ``speakers`` if given."""

    def __init__(self, text: str, *, speakers: Sequence[str] | None = None) -> None:
        if not text:
            raise ValueError("TextMention needs a text to look for")
        self.text = text
        self.speakers = None if speakers is None else frozenset(speakers)

    def check(self, state: ChatState) -> str | None:
        last = state.last
        if state.turns == 0 or self.text not in last.text:
            return None
        if self.speakers is not None and last.speaker not in self.speakers:
            return None
        return f"text_mention: {self.text!r} by {last.speaker}"

    def __repr__(self) -> str:
        return f"TextMention({self.text!r})"


class TokenBudget(TerminationCondition):
    """Met once the chat has used ``tokens`` tokens or more (prompt and completion)."""

    def __init__(self, tokens: int) -> None:
        if tokens < 1:
            raise ValueError(f"TokenBudget needs tokens >= 1, got {tokens}")
        self.tokens = tokens

    def check(self, state: ChatState) -> str | None:
        used = state.usage.total_tokens
        if used >= self.tokens:
            return f"token_budget: {used} of {self.tokens} tokens used"
        return None

    def __repr__(self) -> str:
        return f"TokenBudget({self.tokens})"


class CostBudget(TerminationCondition):
    """Met once the chat has cost ``usd`` or more (needs prices for the model in the
    configuration; without them, calls cost 0)."""

    def __init__(self, usd: float) -> None:
        if usd <= 0:
            raise ValueError(f"CostBudget needs usd > 0, got {usd}")
        self.usd = usd

    def check(self, state: ChatState) -> str | None:
        if state.cost >= self.usd:
            return f"cost_budget: ${state.cost:.6f} of ${self.usd:g} spent"
        return None

    def __repr__(self) -> str:
        return f"CostBudget({self.usd:g})"


class Deadline(TerminationCondition):
    """Met ``seconds`` after the chat started; a turn still going then is interrupted
    (and the chat stops normally, saying so)."""

    def __init__(self, seconds: float) -> None:
        if seconds <= 0:
            raise ValueError(f"Deadline needs seconds > 0, got {seconds}")
        self.seconds = seconds

    def check(self, state: ChatState) -> str | None:
        if state.elapsed >= self.seconds:
            return f"deadline: {self.seconds:g}s passed"
        return None

    def time_left(self, state: ChatState) -> float | None:
        return self.seconds - state.elapsed

    def __repr__(self) -> str:
        return f"Deadline({self.seconds:g})"


class FunctionCondition(TerminationCondition):
    """Met when ``func(state)`` returns True or a reason (a non-empty str)."""

    def __init__(self, func: Callable[[ChatState], bool | str | None], *, name: str = "") -> None:
        if inspect.iscoroutinefunction(func):
            raise TypeError("FunctionCondition takes a plain function, not a coroutine function")
        self.func = func
        self.name = name or getattr(func, "__name__", "function")

    def check(self, state: ChatState) -> str | None:
        verdict = self.func(state)
        if isinstance(verdict, str):
            return verdict or None
        return f"function: {self.name}" if verdict else None

    def __repr__(self) -> str:
        return f"FunctionCondition({self.name})"
