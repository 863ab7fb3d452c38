"""``hivebus monitor``: the message exchange of a live bus, or of a recorded run, in a browser.

    monitor = await serve_monitor(bus)          # embedding: serve it for your own bus
    print(monitor.url)                          # http://127.0.0.1:PORT/
    ...
    await monitor.close()

From the CLI: ``hivebus run SCRIPT --monitor[=PORT]``, ``hivebus load ... --monitor`` and
``hivebus monitor TRACE.jsonl`` (a recorded run, with a time slider). See ``server`` for the
page's API and ``hub`` for how the live stream stays bounded.
"""

from .hub import MonitorHub
from .server import MonitorError, MonitorServer, ReplaySource, serve_monitor, serve_replay
from .state import MonitorState

__all__ = [
    "MonitorError",
    "MonitorHub",
    "MonitorServer",
    "MonitorState",
    "ReplaySource",
    "serve_monitor",
    "serve_replay",
]
