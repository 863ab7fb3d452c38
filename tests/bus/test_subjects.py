"""Subject syntax and the subject index."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bus import InvalidSubject, Topic, matches, validate_subject
from bus._subjects import SubjectIndex

from .messages import Ping


@pytest.mark.parametrize(
    ("subject", "reason"),
    [
        ("", "empty"),
        ("a..b", "empty token at position 1"),
        (".a", "empty token at position 0"),
        ("a.", "empty token at position 1"),
        ("a b", "whitespace"),
        ("a.>.b", "'>' must be the last token"),
        ("a.b*", "wildcards must be whole tokens"),
    ],
)
def test_malformed_subjects_are_refused_with_the_reason(subject: str, reason: str) -> None:
    with pytest.raises(InvalidSubject, match=reason) as info:
        validate_subject(subject, pattern=True)
    assert info.value.subject == subject


def test_wildcards_are_refused_where_a_concrete_subject_is_needed() -> None:
    with pytest.raises(InvalidSubject, match="only allowed in patterns"):
        validate_subject("a.*", pattern=False)
    assert validate_subject("a.*.>", pattern=True) == ("a", "*", ">")


def test_a_topic_validates_its_subject_when_created() -> None:
    with pytest.raises(InvalidSubject):
        Topic("agent..inbox", Ping)
    with pytest.raises(TypeError, match="must be a class"):
        Topic("a.b", "Ping")  # type: ignore[call-overload]


@pytest.mark.parametrize(
    ("pattern", "subject", "expected"),
    [
        ("a.b", "a.b", True),
        ("a.b", "a.c", False),
        ("a.*", "a.b", True),
        ("a.*", "a.b.c", False),
        ("a.>", "a.b.c", True),
        ("a.>", "a", False),
        (">", "a", True),
        ("*.b", "a.b", True),
        ("*", "a.b", False),
    ],
)
def test_matches_follows_nats_wildcards(pattern: str, subject: str, expected: bool) -> None:
    assert matches(pattern, subject) is expected


token = st.sampled_from(["a", "b", "c"])
pattern_token = st.sampled_from(["a", "b", "c", "*"])


@st.composite
def patterns(draw: st.DrawFn) -> str:
    tokens = draw(st.lists(pattern_token, min_size=1, max_size=4))
    if draw(st.booleans()):
        tokens.append(">")
    return ".".join(tokens)


@given(
    st.lists(patterns(), max_size=30),
    st.lists(st.lists(token, min_size=1, max_size=5).map(".".join), min_size=1, max_size=10),
)
def test_the_index_finds_exactly_what_a_linear_scan_finds(
    pats: list[str], subjects: list[str]
) -> None:
    index: SubjectIndex[int] = SubjectIndex()
    for i, p in enumerate(pats):
        index.add(p, i)
    for subject in subjects:
        expected = sorted(i for i, p in enumerate(pats) if matches(p, subject))
        assert sorted(index.match(subject)) == expected
    for i, p in enumerate(pats):
        index.remove(p, i)
    assert len(index) == 0
    assert all(index.match(s) == [] for s in subjects)
    assert list(index.values()) == []
