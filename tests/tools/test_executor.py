"""The tool executor on a real bus: results, every error path, limits, cancellation, stats."""

from __future__ import annotations

import threading

import anyio
import pytest

from bus import Actor, Bus, Context, Message, RequestTimeout, Topic, handler
from tools import (
    TOOL_CALL,
    ToolCallRequest,
    ToolContext,
    ToolExecutor,
    ToolExecutorStats,
    ToolResult,
    ToolStats,
    tool,
)

from .test_tool import add, shout

pytestmark = pytest.mark.anyio


def call(
    name: str, arguments: str = "{}", call_id: str = "call-1", **fields: str
) -> ToolCallRequest:
    return ToolCallRequest(call_id=call_id, name=name, arguments=arguments, **fields)


async def run(bus: Bus, request: ToolCallRequest) -> ToolResult:
    return await bus.request(TOOL_CALL, request, timeout=5)


@tool
def fail(message: str = "") -> str:
    """Always raises."""
    raise RuntimeError(message)


async def test_a_call_is_answered_with_the_tools_output(bus: Bus) -> None:
    await bus.add(ToolExecutor([add, shout]))
    assert await run(bus, call("add", '{"a": 2, "b": 3}', call_id="c7")) == ToolResult(
        call_id="c7", name="add", content="5"
    )
    result = await run(bus, call("shout", '{"text": "hey"}'))
    assert (result.content, result.is_error) == ("HEY", False)


async def test_an_unknown_tool_is_an_error_result_listing_the_tools_there_are(bus: Bus) -> None:
    await bus.add(ToolExecutor([shout, add]))
    result = await run(bus, call("multiply", call_id="c9"))
    assert result == ToolResult(
        call_id="c9",
        name="multiply",
        content="unknown tool 'multiply'; the available tools are: add, shout",
        is_error=True,
    )


async def test_an_executor_without_tools_says_none_are_available(bus: Bus) -> None:
    await bus.add(ToolExecutor([]))
    result = await run(bus, call("anything"))
    assert result.content == "unknown tool 'anything': no tools are available"
    assert result.is_error


async def test_invalid_json_is_an_error_result_saying_where(bus: Bus) -> None:
    await bus.add(ToolExecutor([add]))
    result = await run(bus, call("add", '{"a": 1,, "b": 2}'))
    assert result.is_error
    assert result.content == (
        "arguments for tool 'add' are not valid JSON: JSON is malformed: "
        "object keys must be strings (byte 8)"
    )


async def test_arguments_breaking_the_schema_are_an_error_result_with_the_path(bus: Bus) -> None:
    await bus.add(ToolExecutor([add]))
    result = await run(bus, call("add", '{"a": "one"}'))
    assert result.is_error
    assert result.content == (
        "invalid arguments for tool 'add': Expected `int`, got `str` - at `$.a`"
    )
    missing = await run(bus, call("add", '{"b": 1}'))
    assert missing.content == "invalid arguments for tool 'add': Object missing required field `a`"


async def test_an_exception_is_an_error_result_with_its_type_and_message_only(bus: Bus) -> None:
    await bus.add(ToolExecutor([fail]))
    result = await run(bus, call("fail", '{"message": "disk on fire"}'))
    assert result.is_error
    assert result.content == "tool 'fail' raised RuntimeError: disk on fire"
    assert "Traceback" not in result.content


async def test_an_exception_without_a_message_is_named_by_its_type(bus: Bus) -> None:
    await bus.add(ToolExecutor([fail]))
    assert (await run(bus, call("fail"))).content == "tool 'fail' raised RuntimeError"


async def test_an_output_with_no_json_form_is_an_error_result(bus: Bus) -> None:
    @tool
    def lock() -> object:
        return threading.Lock()

    await bus.add(ToolExecutor([lock]))
    result = await run(bus, call("lock"))
    assert result.is_error
    assert result.content.startswith("tool 'lock' raised TypeError: tool 'lock' returned a")


async def test_a_tool_past_its_timeout_is_an_error_result_naming_the_limit(bus: Bus) -> None:
    @tool(timeout=0.05)
    async def sleepy() -> str:
        await anyio.sleep(10)
        return "never"

    await bus.add(ToolExecutor([sleepy]))
    with anyio.fail_after(2):
        result = await run(bus, call("sleepy"))
    assert result.is_error
    assert result.content == "tool 'sleepy' did not finish within its time limit of 0.05s"


async def test_the_default_timeout_applies_to_tools_without_their_own(bus: Bus) -> None:
    @tool
    async def sleepy() -> str:
        await anyio.sleep(10)
        return "never"

    await bus.add(ToolExecutor([sleepy], default_timeout=0.05))
    result = await run(bus, call("sleepy"))
    assert result.content == "tool 'sleepy' did not finish within its time limit of 0.05s"


async def test_a_sync_tool_past_its_timeout_is_answered_without_waiting_for_it(bus: Bus) -> None:
    release = threading.Event()

    @tool(timeout=0.05)
    def stuck() -> str:
        release.wait(5)
        return "late"

    await bus.add(ToolExecutor([stuck]))
    try:
        with anyio.fail_after(2):
            result = await run(bus, call("stuck"))
    finally:
        release.set()  # the abandoned thread ends with the test
    assert result.content == "tool 'stuck' did not finish within its time limit of 0.05s"


async def test_a_tool_raising_timeout_error_itself_is_an_exception_not_a_timeout(bus: Bus) -> None:
    @tool
    def gives_up() -> str:
        raise TimeoutError("upstream took too long")

    executor = await bus.add(ToolExecutor([gives_up]))
    result = await run(bus, call("gives_up"))
    assert result.content == "tool 'gives_up' raised TimeoutError: upstream took too long"
    assert isinstance(executor, ToolExecutor)
    assert executor.stats().errors == {"exception": 1}


async def test_the_executor_keeps_answering_after_every_kind_of_error(bus: Bus) -> None:
    @tool(timeout=0.02)
    async def slow() -> str:
        await anyio.sleep(1)
        return ""

    await bus.add(ToolExecutor([add, fail, slow]))
    for request in [call("nope"), call("add", "{"), call("add", "{}"), call("fail"), call("slow")]:
        assert (await run(bus, request)).is_error
    assert (await run(bus, call("add", '{"a": 1}'))).content == "1"
    stats = bus.stats()
    assert (stats.failed, stats.dead_lettered, stats.delivered) == (0, 0, 6)


async def test_a_tool_limit_bounds_the_calls_running_at_once(bus: Bus) -> None:
    running = peak = 0

    @tool(concurrency=2)
    async def busy() -> str:
        nonlocal running, peak
        running += 1
        peak = max(peak, running)
        await anyio.sleep(0.02)
        running -= 1
        return "done"

    await bus.add(ToolExecutor([busy]))
    results: list[ToolResult] = []

    async def one(i: int) -> None:
        results.append(await run(bus, call("busy", call_id=f"c{i}")))

    async with anyio.create_task_group() as tg:
        for i in range(8):
            tg.start_soon(one, i)
    assert peak == 2
    assert sorted(r.call_id for r in results) == sorted(f"c{i}" for i in range(8))
    assert all(r.content == "done" for r in results)


async def test_the_executor_limit_bounds_all_tools_together(bus: Bus) -> None:
    running = peak = 0

    async def busy() -> str:
        nonlocal running, peak
        running += 1
        peak = max(peak, running)
        await anyio.sleep(0.02)
        running -= 1
        return "done"

    one, two = tool(name="one")(busy), tool(name="two")(busy)
    await bus.add(ToolExecutor([one, two], concurrency=3))
    async with anyio.create_task_group() as tg:
        for i in range(10):
            tg.start_soon(run, bus, call("one" if i % 2 else "two"))
    assert peak == 3


async def test_the_time_limit_does_not_count_waiting_for_a_slot(bus: Bus) -> None:
    # four calls one at a time: the last waits 2.4s for its slot, past the 2s limit (each
    # call itself has 1.2 s to spare on a loaded machine)
    @tool(concurrency=1, timeout=2)
    async def takes_a_while() -> str:
        await anyio.sleep(0.8)
        return "done"

    await bus.add(ToolExecutor([takes_a_while]))
    results: list[ToolResult] = []

    async def one() -> None:
        results.append(await run(bus, call("takes_a_while")))

    async with anyio.create_task_group() as tg:
        for _ in range(4):
            tg.start_soon(one)
    assert [r.content for r in results] == ["done"] * 4


async def test_a_request_given_up_cancels_the_running_tool(bus: Bus) -> None:
    started, cancelled = anyio.Event(), anyio.Event()

    @tool
    async def forever() -> str:
        started.set()
        try:
            await anyio.sleep_forever()
        except anyio.get_cancelled_exc_class():
            cancelled.set()
            raise
        return "never"

    executor = ToolExecutor([forever])
    await bus.add(executor)
    with pytest.raises(RequestTimeout):
        await bus.request(TOOL_CALL, call("forever"), timeout=0.1)
    assert started.is_set()
    with anyio.fail_after(2):
        await cancelled.wait()
    await bus.drain(timeout=2)
    stats = executor.stats()
    assert (stats.calls, stats.cancelled, stats.in_flight) == (1, 1, 0)
    assert stats.tools["forever"].cancelled == 1


async def test_cancelling_the_requesting_scope_cancels_the_tool(bus: Bus) -> None:
    started, cancelled = anyio.Event(), anyio.Event()

    @tool(timeout=10)
    async def forever() -> str:
        started.set()
        try:
            await anyio.sleep_forever()
        finally:
            cancelled.set()
        return "never"

    await bus.add(ToolExecutor([forever]))
    async with anyio.create_task_group() as tg:
        tg.start_soon(run, bus, call("forever"))
        with anyio.fail_after(2):
            await started.wait()
        tg.cancel_scope.cancel()
    with anyio.fail_after(2):
        await cancelled.wait()
    # the executor is still fine
    assert (await run(bus, call("forever", "{x"))).is_error


class Echo(Message, frozen=True, kw_only=True):
    text: str


ECHO = Topic("test.echo", Echo, reply=Echo)


class Echoer(Actor):
    """Echoes, and records the context of what it was asked."""

    def __init__(self) -> None:
        super().__init__("echoer")
        self.seen: list[Context] = []

    @handler(ECHO)
    async def echo(self, msg: Echo, ctx: Context) -> Echo:
        self.seen.append(ctx)
        return Echo(text=msg.text * 2)


async def test_a_tool_talks_to_the_bus_through_its_context_as_a_consequence_of_the_call(
    bus: Bus,
) -> None:
    call_ids: list[str] = []

    @tool
    async def relay(text: str, ctx: ToolContext) -> str:
        assert ctx.context is not None
        call_ids.append(ctx.context.id)
        reply = await ctx.request(ECHO, Echo(text=text))
        return f"{reply.text} ({ctx.call_id}, {ctx.conversation_id}, {ctx.agent})"

    echoer = Echoer()
    await bus.add(echoer)
    await bus.add(ToolExecutor([relay]))
    request = call("relay", '{"text": "ab"}', call_id="c3", conversation_id="conv", agent="ann")
    assert (await run(bus, request)).content == "abab (c3, conv, ann)"
    assert echoer.seen[0].causation_id == call_ids[0]
    assert echoer.seen[0].sender == "tool-executor.call"


async def test_executors_share_calls_through_their_queue_group(bus: Bus) -> None:
    first, second = ToolExecutor([add], name="first"), ToolExecutor([add], name="second")
    await bus.add(first)
    await bus.add(second)
    for i in range(10):
        assert (await run(bus, call("add", f'{{"a": {i}}}'))).content == str(i)
    assert first.stats().calls + second.stats().calls == 10


def test_duplicate_tool_names_are_refused() -> None:
    other = tool(name="add")(lambda_free_add)
    with pytest.raises(ValueError, match=r"two tools are named 'add'"):
        ToolExecutor([add, other])


def lambda_free_add(a: int) -> int:
    return a


@pytest.mark.parametrize("options", [{"concurrency": 0}, {"default_timeout": 0}])
def test_limits_must_be_positive(options: dict[str, float]) -> None:
    with pytest.raises(ValueError, match=r"concurrency must be >= 1 and default_timeout > 0"):
        ToolExecutor([add], **options)  # type: ignore[arg-type]


def test_the_executor_lists_the_definitions_of_its_tools() -> None:
    executor = ToolExecutor([add, shout])
    assert executor.definitions() == [add.definition(), shout.definition()]
    assert executor.name == "tool-executor"
    assert executor.concurrency == 64


async def test_stats_count_calls_and_errors_by_kind_in_total_and_per_tool(bus: Bus) -> None:
    @tool(timeout=0.02)
    async def slow() -> str:
        await anyio.sleep(1)
        return ""

    executor = ToolExecutor([add, fail, slow])
    await bus.add(executor)
    for request in [
        call("add", '{"a": 1}'),
        call("add", '{"a": 2}'),
        call("add", "{"),
        call("add", '{"a": "x"}'),
        call("fail"),
        call("slow"),
        call("ghost"),
    ]:
        await run(bus, request)
    assert executor.stats() == ToolExecutorStats(
        calls=7,
        succeeded=2,
        errors={
            "invalid_json": 1,
            "invalid_arguments": 1,
            "exception": 1,
            "timeout": 1,
            "unknown_tool": 1,
        },
        cancelled=0,
        in_flight=0,
        tools={
            "add": ToolStats(
                calls=4, succeeded=2, errors={"invalid_json": 1, "invalid_arguments": 1}
            ),
            "fail": ToolStats(calls=1, errors={"exception": 1}),
            "slow": ToolStats(calls=1, errors={"timeout": 1}),
        },
    )


async def test_stats_show_calls_in_flight(bus: Bus) -> None:
    started, release = anyio.Event(), anyio.Event()

    @tool
    async def parked() -> str:
        started.set()
        await release.wait()
        return "ok"

    executor = ToolExecutor([parked])
    await bus.add(executor)
    async with anyio.create_task_group() as tg:
        tg.start_soon(run, bus, call("parked"))
        with anyio.fail_after(2):
            await started.wait()
        assert executor.stats().in_flight == 1
        release.set()
    assert executor.stats().in_flight == 0


async def test_tools_added_while_running_are_served_and_the_same_tool_twice_is_one(
    bus: Bus,
) -> None:
    executor = ToolExecutor([])
    await bus.add(executor)
    assert (await run(bus, call("add", '{"a": 1}'))).is_error  # not there yet
    executor.add(add)
    executor.add(add)  # the same tool again: nothing changes
    assert (await run(bus, call("add", '{"a": 3}'))).content == "3"
    assert list(executor.stats().tools) == ["add"]
    with pytest.raises(ValueError, match=r"two tools are named 'add'"):
        executor.add(tool(name="add")(lambda_free_add))


async def test_a_sync_call_past_its_time_limit_keeps_its_slot_until_its_thread_is_done(
    bus: Bus,
) -> None:
    lock = threading.Lock()
    running = peak = 0
    release = threading.Event()

    @tool(concurrency=1, timeout=0.05)
    def exclusive(n: int) -> int:
        """Never twice at once."""
        nonlocal running, peak
        with lock:
            running += 1
            peak = max(peak, running)
        if n == 0:
            release.wait(5)  # far past its time limit
        with lock:
            running -= 1
        return n

    executor = ToolExecutor([exclusive])
    await bus.add(executor)
    first = await run(bus, call("exclusive", '{"n": 0}'))
    assert first.is_error and "time limit of 0.05s" in first.content
    assert executor.stats().threads == 1  # abandoned, still running
    second = await run(bus, call("exclusive", '{"n": 1}'))  # its slot never came free
    assert second.is_error and "is busy" in second.content
    release.set()
    for _ in range(500):  # the thread finishes, then its slot comes back on the loop
        if not executor.stats().threads:
            break
        await anyio.sleep(0.01)
    assert executor.stats().threads == 0
    assert (await run(bus, call("exclusive", '{"n": 2}'))).content == "2"
    assert peak == 1


async def test_a_sync_call_given_up_before_a_thread_took_it_never_runs() -> None:
    started: list[int] = []
    gate = threading.Event()

    @tool(timeout=0.05)
    def slow(n: int) -> int:
        """Blocks until the gate opens."""
        started.append(n)
        gate.wait(5)
        return n

    async with Bus("threads") as bus:
        executor = ToolExecutor([slow], concurrency=1)  # one thread: the rest queue
        await bus.add(executor)
        async with anyio.create_task_group() as tg:
            tg.start_soon(run, bus, call("slow", '{"n": 0}'))
            with anyio.fail_after(10):  # the one thread took call 0 (its own timeout aside)
                while not started:  # noqa: ASYNC110
                    await anyio.sleep(0.001)
            for n in (1, 2):
                tg.start_soon(run, bus, call("slow", f'{{"n": {n}}}'))
    gate.set()
    await anyio.sleep(0.1)
    assert started == [0]  # the others timed out queued for the one thread: dropped
