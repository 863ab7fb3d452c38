"""What every benchmark prints: one check per bar, each next to its baseline."""

from __future__ import annotations

from typing import Any

import orjson


def check(name: str, value: float, baseline: float, bar: str, ok: bool) -> dict[str, Any]:
    """One figure beside its same-run baseline, with the bar it is held to."""
    return {
        "name": name,
        "value": round(value, 2),
        "baseline": round(baseline, 2),
        "ratio": round(value / baseline, 3),
        "bar": bar,
        "ok": ok,
    }


def print_checks(result: dict[str, Any], label: str, *, as_json: bool) -> None:
    """The table (figure, value, baseline, ratio, bar) and, with ``as_json``, the whole
    result as one JSON object on the last line."""
    print(f"{'figure':44} {label:>12} {'baseline':>12} {'ratio':>7}  bar")
    for c in result["checks"]:
        mark = "ok " if c["ok"] else "LOW"
        print(
            f"{c['name']:44} {c['value']:>12,.1f} {c['baseline']:>12,.1f} {c['ratio']:>7.3f}"
            f"  {mark} {c['bar']}"
        )
    if as_json:
        print(orjson.dumps(result).decode())
