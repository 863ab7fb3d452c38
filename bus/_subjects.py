"""Subject syntax and the index that maps a subject to the subscriptions matching it.

Subjects follow NATS: dot-separated tokens; a subscription pattern may use ``*``
for exactly one token and ``>`` (last token only) for one or more tokens.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Generic, TypeVar

from .errors import InvalidSubject

_FORBIDDEN = frozenset(" \t\r\n\x00")

V = TypeVar("V")


def validate_subject(subject: str, *, pattern: bool) -> tuple[str, ...]:
    """Return the tokens of ``subject``; raise :class:`InvalidSubject` if it is malformed.

    Wildcards are allowed only when ``pattern`` is true (subscriptions, taps).
    """
    if not isinstance(subject, str):
        raise InvalidSubject(repr(subject), "a subject must be a str")
    if not subject:
        raise InvalidSubject(subject, "empty")
    if _FORBIDDEN.intersection(subject):
        raise InvalidSubject(subject, "whitespace or NUL is not allowed")
    tokens = tuple(subject.split("."))
    last = len(tokens) - 1
    for i, token in enumerate(tokens):
        if not token:
            raise InvalidSubject(subject, f"empty token at position {i}")
        if token in ("*", ">"):
            if not pattern:
                raise InvalidSubject(subject, f"wildcard {token!r} is only allowed in patterns")
            if token == ">" and i != last:
                raise InvalidSubject(subject, "'>' must be the last token")
        elif "*" in token or ">" in token:
            raise InvalidSubject(subject, f"wildcards must be whole tokens, got {token!r}")
    return tokens


def is_pattern(subject: str) -> bool:
    """True if ``subject`` contains a wildcard token."""
    return any(t in ("*", ">") for t in subject.split("."))


def matches(pattern: str, subject: str) -> bool:
    """True if the concrete ``subject`` matches ``pattern``."""
    p = pattern.split(".")
    s = subject.split(".")
    for i, token in enumerate(p):
        if token == ">":
            return len(s) > i
        if i >= len(s) or (token != "*" and token != s[i]):
            return False
    return len(p) == len(s)


class _Node(Generic[V]):
    __slots__ = ("children", "full_wild", "values")

    def __init__(self) -> None:
        self.children: dict[str, _Node[V]] = {}
        self.values: list[V] = []  # values whose pattern ends at this node
        self.full_wild: list[V] = []  # values whose pattern ends with '>' here


class SubjectIndex(Generic[V]):
    """A token trie from patterns to values: lookup costs O(tokens), not O(subscriptions)."""

    def __init__(self) -> None:
        self._root: _Node[V] = _Node()
        self._count = 0

    def __len__(self) -> int:
        return self._count

    def add(self, pattern: str, value: V) -> None:
        """Index ``value`` under ``pattern`` (already validated)."""
        node = self._root
        tokens = pattern.split(".")
        for token in tokens[:-1]:
            node = node.children.setdefault(token, _Node())
        last = tokens[-1]
        if last == ">":
            node.full_wild.append(value)
        else:
            node.children.setdefault(last, _Node()).values.append(value)
        self._count += 1

    def remove(self, pattern: str, value: V) -> None:
        """Remove one entry of ``value`` under ``pattern``; prune empty nodes."""
        tokens = pattern.split(".")
        path: list[tuple[_Node[V], str]] = []
        node = self._root
        for token in tokens[:-1]:
            path.append((node, token))
            node = node.children[token]
        last = tokens[-1]
        if last == ">":
            node.full_wild.remove(value)
        else:
            path.append((node, last))
            node = node.children[last]
            node.values.remove(value)
        self._count -= 1
        for parent, token in reversed(path):
            child = parent.children[token]
            if child.values or child.full_wild or child.children:
                break
            del parent.children[token]

    def match(self, subject: str) -> list[V]:
        """Every value whose pattern matches the concrete ``subject``, in index order."""
        found: list[V] = []
        tokens = subject.split(".")
        self._walk(self._root, tokens, 0, found)
        return found

    def _walk(self, node: _Node[V], tokens: list[str], i: int, found: list[V]) -> None:
        if node.full_wild and i < len(tokens):
            found.extend(node.full_wild)
        if i == len(tokens):
            found.extend(node.values)
            return
        children = node.children
        if not children:
            return
        child = children.get(tokens[i])
        if child is not None:
            self._walk(child, tokens, i + 1, found)
        star = children.get("*")
        if star is not None:
            self._walk(star, tokens, i + 1, found)

    def values(self) -> Iterator[V]:
        """Every indexed value (for shutdown and stats)."""
        stack = [self._root]
        while stack:
            node = stack.pop()
            yield from node.values
            yield from node.full_wild
            stack.extend(node.children.values())
