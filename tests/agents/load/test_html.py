"""The HTML report: valid, with its three plots, and self-contained (nothing fetched)."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from html.parser import HTMLParser

import msgspec
import pytest

from agents.config import Config
from agents.load import LoadOptions, LoadReport, run_load
from agents.load.html import histogram_chart, line_chart, render

from .conftest import FAULTS

pytestmark = pytest.mark.anyio

VOID = {"meta", "br", "hr", "img", "input", "link", "area", "base", "col", "source", "wbr"}
SVG_LEAVES = {"line", "polyline", "rect", "circle", "path"}
FETCHING = {"src", "href", "xlink:href", "srcset", "action", "data", "poster", "background"}


@dataclass
class Page(HTMLParser):
    """Checks nesting as it parses, and collects what a page could fetch."""

    open: list[str] = field(default_factory=list)
    tags: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    fetches: list[str] = field(default_factory=list)
    text: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        super().__init__(convert_charrefs=True)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        self.fetches += [f"{tag} {k}={v}" for k, v in attrs if k in FETCHING]
        if tag not in VOID:
            self.open.append(tag)

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        self.fetches += [f"{tag} {k}={v}" for k, v in attrs if k in FETCHING]

    def handle_endtag(self, tag: str) -> None:
        if not self.open or self.open[-1] != tag:
            self.problems.append(f"</{tag}> closes {self.open[-1:] or 'nothing'}")
        else:
            self.open.pop()

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def parse(page: str) -> Page:
    parser = Page()
    parser.feed(page)
    parser.close()
    return parser


async def sample_report(config: Config) -> LoadReport:
    options = LoadOptions(
        loops=150, concurrency=30, cap=10, latency="5ms", faults=FAULTS, mock_in_process=True
    )
    return await run_load(options, config=config)


async def test_the_page_is_valid_and_self_contained(fast_config: Config) -> None:
    report = await sample_report(fast_config)
    page = render(report)
    parsed = parse(page)
    assert page.startswith("<!DOCTYPE html>")
    assert parsed.problems == [] and parsed.open == [], "every element is closed, in order"
    assert parsed.tags.count("svg") == 3, "latency histogram, throughput, in flight"
    assert parsed.tags.count("rect") >= 2 and parsed.tags.count("polyline") == 4
    assert parsed.fetches == [], "no src, href or the like: nothing to fetch"
    assert not {"script", "link", "img", "iframe", "object", "embed"} & set(parsed.tags)
    assert not re.search(r"https?://|//[a-z0-9]|url\(|@import", page, re.IGNORECASE)


async def test_the_page_shows_the_figures(fast_config: Config) -> None:
    report = await sample_report(fast_config)
    text = " ".join(parse(render(report)).text)
    assert f"{report.loops.ok:,} / {report.loops.started:,}" in text
    assert report.bottleneck.kind.replace("_", " ") in text
    for name in report.loops.by_outcome:
        assert name in text
    assert "127.0.0.1:" in text, "the target's host and port, without a URL"
    assert "Loop latency" in text and "Throughput" in text and "In flight" in text


async def test_text_from_the_run_is_escaped(fast_config: Config) -> None:
    report = await sample_report(fast_config)
    hostile = msgspec.structs.replace(report, notes=["<script>alert(1)</script> & more"])
    page = render(hostile)
    assert "<script>" not in page and "&lt;script&gt;" in page
    assert parse(page).problems == []


def test_charts_with_no_data_are_empty_frames() -> None:
    for chart in (histogram_chart("empty", [], []), line_chart("empty", [], [("x", [])])):
        parsed = parse(chart)
        assert parsed.tags.count("svg") == 1 and parsed.problems == []


def test_a_line_chart_scales_to_its_largest_value() -> None:
    chart = line_chart("t", [0.0, 1.0, 2.0], [("a", [0.0, 5.0, 10.0]), ("b", [1.0, 1.0, 1.0])])
    points = re.findall(r"points='([^']*)'", chart)
    assert len(points) == 2
    first = [tuple(map(float, p.split(","))) for p in points[0].split()]
    assert first[0][1] > first[1][1] > first[2][1], "larger values are drawn higher"
    assert ">10<" in chart, "the axis shows the top value"
