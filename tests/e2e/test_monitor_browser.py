"""The monitor in a real browser: headless Chromium (Debian's) driven by Playwright.

A team of agents runs on the mock LLM (with latency, so the run lasts long enough to watch)
with the monitor on; the page must load, show the agents, receive live messages, narrow
them with a filter, show a message's payload when clicked, and replay the recorded trace
with its slider. Screenshots are saved under ``.artifacts/`` (or ``$HIVEBUS_ARTIFACTS``).

Skipped with the reason when Playwright or Chromium is missing, unless
``HIVEBUS_REQUIRE_BROWSER=1`` (CI sets it), which makes that a failure.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import anyio
import pytest

from agents import Agent, load_config, open_runtime
from agents.llm import MockLLM
from agents.monitor import serve_monitor, serve_replay
from bus import TraceRecorder

from ..agents.run_fixtures import POLICY, count_bees
from .cli import ROOT

pytestmark = pytest.mark.anyio

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
# As the machine's own probe starts it: no sandbox (root), and nothing that phones home.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
ARTIFACTS = Path(os.environ.get("HIVEBUS_ARTIFACTS") or ROOT / ".artifacts")
WAIT_MS = 15_000


def _need_browser() -> None:
    why = None
    try:
        import playwright.async_api  # noqa: F401
    except ImportError:
        why = "Playwright is not installed (scripts/test installs it with the dev extra)"
    if why is None and not os.access(CHROMIUM, os.X_OK):
        why = f"no Chromium at {CHROMIUM} (scripts/test installs Debian's chromium as root)"
    if why is not None:
        if os.environ.get("HIVEBUS_REQUIRE_BROWSER") == "1":
            pytest.fail(f"HIVEBUS_REQUIRE_BROWSER=1 but {why}")
        pytest.skip(why)


@pytest.fixture
async def page() -> AsyncIterator[Any]:
    _need_browser()
    from playwright.async_api import async_playwright

    errors: list[str] = []
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(
            executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS
        )
        try:
            tab = await browser.new_page(viewport={"width": 1600, "height": 1000})
            tab.on("pageerror", lambda error: errors.append(str(error)))
            yield tab
        finally:
            await browser.close()
    assert errors == [], f"the page raised: {errors}"


async def shot(page: Any, name: str) -> None:
    await anyio.Path(ARTIFACTS).mkdir(parents=True, exist_ok=True)
    await page.screenshot(path=str(ARTIFACTS / name), full_page=True)


async def test_a_live_run_in_the_browser(page: Any, tmp_path: Path) -> None:
    async with MockLLM(POLICY, latency="150ms") as url:
        config = load_config(None, env={"OPENAI_BASE_URL": url})
        async with open_runtime(config) as runtime:
            monitor = await serve_monitor(runtime.bus, title="bees")
            try:
                with TraceRecorder(runtime.bus, tmp_path / "run.jsonl"):
                    await runtime.add(
                        Agent("researcher", "You are researcher.", tools=[count_bees]),
                        Agent("looper", "You are looper.", tools=[count_bees], max_steps=1),
                    )
                    await page.goto(monitor.url)
                    await page.wait_for_selector("body[data-ready='1']", timeout=WAIT_MS)
                    assert "LIVE" in (await page.text_content("body") or "").upper()
                    async with anyio.create_task_group() as tg:
                        tg.start_soon(runtime.ask, "researcher", "How many bees in the north?")
                        # live: the agent appears, thinking, while its call is in flight
                        await page.wait_for_selector(
                            "#agents [data-agent='researcher']", timeout=WAIT_MS
                        )
                        await page.wait_for_selector("#flow .msg", timeout=WAIT_MS)
                    await _looper_fails(runtime)
                    await runtime.bus.drain()
                await page.wait_for_selector("#agents [data-agent='looper']", timeout=WAIT_MS)
                await _wait_count(page, "#flow .msg", at_least=20)
                await shot(page, "monitor-live.png")
                await _filter_and_click(page)
                gateway = await page.text_content("#gateway") or ""
                assert "gpt-4o-mini" in gateway
                await _pause_holds_new_messages(page, runtime)
            finally:
                await monitor.close()
    await _replay(page, tmp_path / "run.jsonl")


async def _looper_fails(runtime: Any) -> None:
    from agents import MaxStepsExceeded

    with pytest.raises(MaxStepsExceeded):
        await runtime.ask("looper", "Loop forever.")


COUNT_AT_LEAST = "([selector, n]) => document.querySelectorAll(selector).length >= n"
COUNT_BELOW = "([selector, n]) => document.querySelectorAll(selector).length < n"


async def _wait_count(page: Any, selector: str, *, at_least: int) -> int:
    await page.wait_for_function(COUNT_AT_LEAST, arg=[selector, at_least], timeout=WAIT_MS)
    count: int = await page.locator(selector).count()
    return count


async def _filter_and_click(page: Any) -> None:
    everything = await page.locator("#flow .msg").count()
    await page.select_option("#filter-agent", "looper")
    await page.wait_for_function(COUNT_BELOW, arg=["#flow .msg", everything], timeout=WAIT_MS)
    narrowed = await page.locator("#flow .msg").count()
    assert narrowed > 0
    texts = await page.locator("#flow .msg").all_text_contents()
    assert not any("north hive holds 12000" in text for text in texts)  # researcher's answer
    count_text = await page.text_content("#flow-count") or ""
    assert str(narrowed) in count_text
    # the looper's tool call: its payload, and the causation chain back to the task
    call = page.locator("#flow .msg", has_text='count_bees({"hive":"north"})').first
    await call.click()
    await page.wait_for_selector("#payload", timeout=WAIT_MS)
    await page.wait_for_function(
        "() => (document.querySelector('#payload')?.textContent || '').includes('north')",
        timeout=WAIT_MS,
    )
    detail = await page.text_content("#detail") or ""
    assert "Loop forever" in detail  # the task, at the root of the chain
    await shot(page, "monitor-filtered.png")
    await page.select_option("#filter-agent", "")
    await _wait_count(page, "#flow .msg", at_least=everything)
    # by subject (a pattern), then by conversation
    await page.fill("#filter-subject", "llm.*")
    await page.wait_for_function(COUNT_BELOW, arg=["#flow .msg", everything], timeout=WAIT_MS)
    subjects = await page.locator("#flow .msg .subj").all_text_contents()
    assert subjects and set(subjects) == {"llm.chat"}
    await page.fill("#filter-subject", "")
    looper_task = "(r) => r.subject === 'agent.looper.inbox'"
    conversation = await page.evaluate(
        f"() => window.hivebus.records.find({looper_task}).conversation"
    )
    await _wait_count(page, "#flow .msg", at_least=everything)
    await page.fill("#filter-conversation", conversation)
    await page.wait_for_function(COUNT_BELOW, arg=["#flow .msg", everything], timeout=WAIT_MS)
    mine = await page.evaluate(
        """() => [...document.querySelectorAll('#flow .msg')].map((row) =>
            window.hivebus.records.find((r) => r.id === row.dataset.id).conversation)"""
    )
    assert mine and set(mine) == {conversation}
    await page.fill("#filter-conversation", "")
    await _wait_count(page, "#flow .msg", at_least=everything)


async def _pause_holds_new_messages(page: Any, runtime: Any) -> None:
    before = await page.locator("#flow .msg").count()
    await page.click("#pause")
    await runtime.ask("researcher", "How many bees in the north hive, again?")
    await page.wait_for_function(
        "() => /Resume \\(\\d+/.test(document.querySelector('#pause').textContent)",
        timeout=WAIT_MS,
    )  # it counts what came, and draws none of it
    assert await page.locator("#flow .msg").count() == before
    await page.click("#pause")
    await _wait_count(page, "#flow .msg", at_least=before + 10)


async def _replay(page: Any, trace: Path) -> None:
    monitor = await serve_replay(trace)
    try:
        await page.goto(monitor.url)
        await page.wait_for_selector("body[data-ready='1']", timeout=WAIT_MS)
        assert "REPLAY" in (await page.text_content("body") or "").upper()
        at_end = await _wait_count(page, "#flow .msg", at_least=20)
        await page.wait_for_selector("#agents [data-agent='looper']", timeout=WAIT_MS)
        # back to early in the run: fewer messages, and the looper not there yet
        await page.eval_on_selector(
            "#slider",
            """(slider) => {
                const low = Number(slider.min), high = Number(slider.max);
                slider.value = String(low + (high - low) * 0.1);
                slider.dispatchEvent(new Event('input', {bubbles: true}));
                slider.dispatchEvent(new Event('change', {bubbles: true}));
            }""",
        )
        await page.wait_for_function(COUNT_BELOW, arg=["#flow .msg", at_end], timeout=WAIT_MS)
        assert await page.locator("#agents [data-agent='looper']").count() == 0
        await shot(page, "monitor-replay.png")
    finally:
        await monitor.close()
