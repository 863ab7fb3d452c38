"""Running ``hivebus`` as a user does, for the end-to-end tests: a subprocess from the
checkout, stdout a pipe, and no LLM endpoint configured (so the mock LLM answers)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
ESCAPES = re.compile(r"\x1b|\x9b|\r")  # colours, cursor movement, line rewrites


def clean_env(**extra: str) -> dict[str, str]:
    """The environment without any LLM endpoint or hivebus setting, nor terminal hints."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("OPENAI_", "HIVEBUS_"))
        and k not in ("FORCE_COLOR", "CLICOLOR_FORCE", "TTY_COMPATIBLE", "COLUMNS")
    }
    return env | extra


def hivebus(
    *args: str, env: dict[str, str] | None = None, cwd: Path = ROOT
) -> subprocess.CompletedProcess[str]:
    """``hivebus ARGS...`` (as ``python -m agents.cli``), its output captured."""
    return subprocess.run(
        [sys.executable, "-m", "agents.cli", *args],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=cwd,
        env=env or clean_env(),
        check=False,
    )
