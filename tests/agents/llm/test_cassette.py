"""The cassette: LLM calls recorded to a JSON-lines file and replayed from it with no LLM."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import msgspec
import pytest

from agents.llm.cassette import Cassette, CassetteError, request_key
from agents.llm.errors import CassetteMiss, LLMError
from agents.llm.wire import (
    AssistantMessage,
    ChatCompletion,
    ChatCompletionRequest,
    Choice,
    FunctionDefinition,
    FunctionTool,
    ResponseMessage,
    StreamOptions,
    SystemMessage,
    Usage,
    UserMessage,
)

REPO = Path(__file__).resolve().parents[3]


def make_request(question: str = "What is a hive?", **fields: Any) -> ChatCompletionRequest:
    fields.setdefault("model", "gpt-4o")
    messages = [
        SystemMessage(content="You answer in one sentence."),
        UserMessage(content="Hello"),
        AssistantMessage(content="Hello! Ask me about bees."),
        UserMessage(content=question),
    ]
    return ChatCompletionRequest(messages=fields.pop("messages", messages), **fields)


def make_completion(text: str) -> ChatCompletion:
    return ChatCompletion(
        id=f"chatcmpl-{len(text)}",
        created=1_700_000_000,
        model="gpt-4o-2024-08-06",
        choices=[Choice(message=ResponseMessage(content=text), finish_reason="stop")],
        usage=Usage(prompt_tokens=20, completion_tokens=9, total_tokens=29),
    )


def miss_message(cassette: Cassette, request: ChatCompletionRequest) -> str:
    with pytest.raises(CassetteMiss) as caught:
        cassette.lookup(request)
    return str(caught.value)


# -- record, then replay ---------------------------------------------------------------------


def test_replay_answers_with_the_recorded_completions(tmp_path: Path) -> None:
    path = tmp_path / "calls.jsonl"
    recorder = Cassette(path, "record")
    hive, bee = make_request("What is a hive?"), make_request("What is a bee?")
    recorder.record(hive, make_completion("A home for a colony of bees."))
    recorder.record(bee, make_completion("An insect that makes honey."))

    player = Cassette(path, "replay")

    assert player.lookup(bee) == make_completion("An insect that makes honey.")
    assert player.lookup(hive) == make_completion("A home for a colony of bees.")


def test_recording_creates_the_file_and_its_folders(tmp_path: Path) -> None:
    path = tmp_path / "runs" / "today" / "calls.jsonl"

    Cassette(path, "record").record(make_request(), make_completion("A home."))

    assert len(path.read_text().splitlines()) == 1


def test_a_line_holds_the_key_the_canonical_request_and_the_completion(tmp_path: Path) -> None:
    path = tmp_path / "calls.jsonl"
    request = make_request(stream=True, user="alice")

    Cassette(path, "record").record(request, make_completion("A home."))

    line = msgspec.json.decode(path.read_bytes())
    assert list(line) == ["key", "request", "completion"]
    assert line["key"] == request_key(request)
    assert line["request"] == msgspec.to_builtins(make_request())  # no stream, no user
    assert line["completion"]["choices"][0]["message"]["content"] == "A home."


def test_recording_again_appends_to_the_cassette(tmp_path: Path) -> None:
    path = tmp_path / "calls.jsonl"
    Cassette(path, "record").record(make_request("one?"), make_completion("One."))

    Cassette(path, "record").record(make_request("two?"), make_completion("Two."))

    player = Cassette(path, "replay")
    assert player.lookup(make_request("one?")) == make_completion("One.")
    assert player.lookup(make_request("two?")) == make_completion("Two.")


def test_a_streamed_call_replays_from_a_plain_recording(tmp_path: Path) -> None:
    path = tmp_path / "calls.jsonl"
    Cassette(path, "record").record(make_request(), make_completion("A home."))
    streamed = make_request(stream=True, stream_options=StreamOptions(include_usage=True))

    assert Cassette(path, "replay").lookup(streamed) == make_completion("A home.")


def test_a_repeated_request_is_answered_in_recorded_order_then_with_the_last(
    tmp_path: Path,
) -> None:
    path = tmp_path / "calls.jsonl"
    recorder = Cassette(path, "record")
    for text in ("First.", "Second.", "Third."):
        recorder.record(make_request(), make_completion(text))

    player = Cassette(path, "replay")

    answers = [player.lookup(make_request()).choices[0].message.content for _ in range(5)]
    assert answers == ["First.", "Second.", "Third.", "Third.", "Third."]


def test_a_request_edited_by_hand_in_the_file_still_matches(tmp_path: Path) -> None:
    path = tmp_path / "calls.jsonl"
    Cassette(path, "record").record(make_request("What is a hive?"), make_completion("A home."))
    path.write_text(path.read_text().replace("What is a hive?", "What is a nest?"))

    assert Cassette(path, "replay").lookup(make_request("What is a nest?")) == make_completion(
        "A home."
    )


# -- the key ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "fields",
    [
        {"stream": True},
        {"stream": True, "stream_options": StreamOptions(include_usage=True)},
        {"user": "alice"},
        {"metadata": {"run": "42"}},
    ],
    ids=["stream", "stream_options", "user", "metadata"],
)
def test_the_key_ignores_fields_that_do_not_change_the_answer(fields: dict[str, Any]) -> None:
    assert request_key(make_request(**fields)) == request_key(make_request())


@pytest.mark.parametrize(
    "fields",
    [
        {"question": "What is a bee?"},
        {"messages": [UserMessage(content="What is a hive?")]},
        {"model": "gpt-4o-mini"},
        {"tools": [FunctionTool(function=FunctionDefinition(name="search"))]},
        {"temperature": 0.7},
    ],
    ids=["message text", "messages", "model", "tools", "temperature"],
)
def test_the_key_changes_with_what_the_model_sees(fields: dict[str, Any]) -> None:
    assert request_key(make_request(**fields)) != request_key(make_request())


def test_the_key_does_not_tell_an_int_from_an_equal_float() -> None:
    assert request_key(make_request(temperature=1)) == request_key(make_request(temperature=1.0))


def test_the_key_does_not_depend_on_the_order_of_dict_keys() -> None:
    def tool(parameters: dict[str, Any]) -> FunctionTool:
        return FunctionTool(function=FunctionDefinition(name="search", parameters=parameters))

    forwards = tool({"type": "object", "properties": {"q": {"type": "string"}}})
    backwards = tool({"properties": {"q": {"type": "string"}}, "type": "object"})

    assert request_key(make_request(tools=[forwards])) == request_key(
        make_request(tools=[backwards])
    )


# -- misses ----------------------------------------------------------------------------------


def test_a_miss_names_the_closest_entry_and_the_first_differing_field(tmp_path: Path) -> None:
    path = tmp_path / "calls.jsonl"
    recorder = Cassette(path, "record")
    recorder.record(make_request(messages=[UserMessage(content="Hi")]), make_completion("Hi."))
    recorder.record(make_request("What is a hive?"), make_completion("A home."))

    message = miss_message(Cassette(path, "replay"), make_request("What is a bee?"))

    assert str(path) in message
    assert "line 2" in message
    assert "messages[3].content: recorded 'What is a hive?', got 'What is a bee?'" in message


def test_a_miss_prefers_a_recorded_request_of_the_same_model(tmp_path: Path) -> None:
    path = tmp_path / "calls.jsonl"
    recorder = Cassette(path, "record")
    recorder.record(make_request("What is a bee?", model="gpt-4o-mini"), make_completion("Bee."))
    recorder.record(make_request("Something else entirely"), make_completion("Else."))

    message = miss_message(Cassette(path, "replay"), make_request("What is a bee?"))

    assert "line 2" in message
    assert "recorded 'Something else entirely', got 'What is a bee?'" in message


def test_a_miss_prefers_the_recorded_text_that_parts_later(tmp_path: Path) -> None:
    path = tmp_path / "calls.jsonl"
    preamble = "Consider the honeybee. " * 20
    recorder = Cassette(path, "record")
    recorder.record(make_request("What is a hive?"), make_completion("A home."))
    recorder.record(make_request(preamble + "What is a hive?"), make_completion("A home."))

    message = miss_message(Cassette(path, "replay"), make_request(preamble + "What is a bee?"))

    assert "line 2" in message


def test_a_miss_shows_a_field_set_on_one_side_only_as_unset(tmp_path: Path) -> None:
    path = tmp_path / "calls.jsonl"
    Cassette(path, "record").record(make_request(), make_completion("A home."))

    message = miss_message(Cassette(path, "replay"), make_request(temperature=0.2))

    assert "temperature: recorded (unset), got 0.2" in message


def test_a_miss_counts_messages_when_one_history_is_longer(tmp_path: Path) -> None:
    path = tmp_path / "calls.jsonl"
    Cassette(path, "record").record(make_request(), make_completion("A home."))
    longer = make_request(messages=[*make_request().messages, UserMessage(content="And?")])

    message = miss_message(Cassette(path, "replay"), longer)

    assert "messages: recorded 4 items, got 5" in message


def test_a_miss_cuts_long_values_around_where_they_differ(tmp_path: Path) -> None:
    path = tmp_path / "calls.jsonl"
    preamble = "Consider the honeybee. " * 20
    Cassette(path, "record").record(make_request(preamble + "What is a hive?"), make_completion(""))

    message = miss_message(Cassette(path, "replay"), make_request(preamble + "What is a bee?"))

    assert "recorded '…" in message
    assert "What is a hive?'" in message
    assert "What is a bee?'" in message
    assert len(message) < 400


def test_a_miss_on_an_empty_cassette_says_it_is_empty(tmp_path: Path) -> None:
    path = tmp_path / "calls.jsonl"
    path.touch()

    message = miss_message(Cassette(path, "replay"), make_request())

    assert f"cassette {path} is empty" in message


def test_a_missing_cassette_file_is_an_error_naming_it(tmp_path: Path) -> None:
    path = tmp_path / "nowhere.jsonl"

    with pytest.raises(CassetteError, match="no such file") as caught:
        Cassette(path, "replay")

    assert str(path) in str(caught.value)
    assert caught.value.path == path


# -- broken files and misuse -----------------------------------------------------------------


@pytest.mark.parametrize(
    "bad_line",
    [b'{"key": "abc", "request": ', b'{"key": "abc"}', b"[1, 2, 3]"],
    ids=["truncated JSON", "missing fields", "not an object"],
)
def test_a_broken_line_is_an_error_naming_the_file_and_line(
    tmp_path: Path, bad_line: bytes
) -> None:
    path = tmp_path / "calls.jsonl"
    Cassette(path, "record").record(make_request(), make_completion("A home."))
    with path.open("ab") as file:
        file.write(b"\n" + bad_line + b"\n")

    with pytest.raises(CassetteError, match="not a cassette entry") as caught:
        Cassette(path, "replay")

    assert f"{path}:3:" in str(caught.value)
    assert caught.value.line == 3
    assert isinstance(caught.value, LLMError)


def test_live_mode_is_not_a_cassette_mode(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="'live'"):
        Cassette(tmp_path / "calls.jsonl", "live")  # type: ignore[arg-type]


def test_a_cassette_opened_to_replay_cannot_record(tmp_path: Path) -> None:
    path = tmp_path / "calls.jsonl"
    path.touch()

    with pytest.raises(CassetteError, match="opened to replay, not to record"):
        Cassette(path, "replay").record(make_request(), make_completion("A home."))


# -- crashes ---------------------------------------------------------------------------------


def test_recorded_calls_survive_the_process_dying_right_after(tmp_path: Path) -> None:
    path = tmp_path / "calls.jsonl"
    script = textwrap.dedent(
        f"""
        import os, sys
        sys.path.insert(0, {str(Path(__file__).parent)!r})
        from test_cassette import make_completion, make_request
        from agents.llm.cassette import Cassette

        cassette = Cassette({str(path)!r}, "record")
        cassette.record(make_request("one?"), make_completion("One."))
        cassette.record(make_request("two?"), make_completion("Two."))
        os._exit(0)  # no cleanup of any kind: no close, no atexit, no flush of buffers
        """
    )

    subprocess.run([sys.executable, "-c", script], cwd=REPO, check=True, timeout=60)

    player = Cassette(path, "replay")
    assert player.lookup(make_request("one?")) == make_completion("One.")
    assert player.lookup(make_request("two?")) == make_completion("Two.")


def test_a_cassette_left_open_does_not_hold_back_its_lines(tmp_path: Path) -> None:
    path = tmp_path / "calls.jsonl"
    recorder = Cassette(path, "record")
    recorder.record(make_request(), make_completion("A home."))

    player = Cassette(path, "replay")  # the recorder is still alive and never closed

    assert player.lookup(make_request()) == make_completion("A home.")
