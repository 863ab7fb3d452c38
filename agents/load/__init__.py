"""``hivebus load``: many concurrent agent loops against the mock LLM (or, when asked
twice, a real endpoint), measured, and reported as JSON and a self-contained HTML page.

:func:`run_load` runs one load and returns its :class:`LoadReport`; the modules hold one
part each: :mod:`.options`, :mod:`.workload`, :mod:`.target` (and
:mod:`.mock_process`), :mod:`.drivers`, :mod:`.metrics`, :mod:`.bottleneck`,
:mod:`.report`, :mod:`.collect`, :mod:`.html`, :mod:`.progress` and :mod:`.run`.
"""

from .bottleneck import find_bottleneck
from .drivers import Budget, Driver, Gate, arrival_time, arrivals_before
from .eventloop import loop_factory, running_loop_name
from .metrics import Sampler, Snapshot, Tally
from .mock_process import MockProcess, ServedStats
from .options import LoadError, LoadOptions, RealEndpointRefused
from .report import LoadReport, read_report
from .run import load_main, run_load, write_report
from .target import Target, choose_target, open_target
from .workload import ScenarioWorkload, SharedRuntime, SyntheticWorkload, Workload

__all__ = [
    "Budget",
    "Driver",
    "Gate",
    "LoadError",
    "LoadOptions",
    "LoadReport",
    "MockProcess",
    "RealEndpointRefused",
    "Sampler",
    "ScenarioWorkload",
    "ServedStats",
    "SharedRuntime",
    "Snapshot",
    "SyntheticWorkload",
    "Tally",
    "Target",
    "Workload",
    "arrival_time",
    "arrivals_before",
    "choose_target",
    "find_bottleneck",
    "load_main",
    "loop_factory",
    "open_target",
    "read_report",
    "run_load",
    "running_loop_name",
    "write_report",
]
