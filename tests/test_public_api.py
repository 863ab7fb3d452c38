"""The packages' public surface and the layering between them."""

from __future__ import annotations

import importlib
import subprocess
import sys

import pytest

PACKAGES = ("bus", "agents", "agents.llm", "agents.memory", "agents.patterns", "tools")


@pytest.mark.parametrize("name", PACKAGES)
def test_every_public_name_is_listed_in_all(name: str) -> None:
    module = importlib.import_module(name)
    assert hasattr(module, "__all__"), f"{name} has no __all__"
    exported = set(module.__all__)
    for attr in exported:
        assert hasattr(module, attr), f"{name}.__all__ lists {attr!r}, which does not exist"
    public = {
        attr
        for attr, value in vars(module).items()
        if not attr.startswith("_")
        and not isinstance(value, type(sys))  # submodules
        and attr not in {"annotations"}
    }
    assert public <= exported, f"{name} exposes {sorted(public - exported)} outside __all__"


@pytest.mark.parametrize(
    ("package", "forbidden"),
    [("bus", ("agents", "tools")), ("tools", ("agents",))],
)
def test_layering_is_respected_on_import(package: str, forbidden: tuple[str, ...]) -> None:
    code = (
        f"import sys, {package}, pkgutil, importlib\n"
        f"for m in pkgutil.walk_packages({package}.__path__, '{package}.'):\n"
        "    importlib.import_module(m.name)\n"
        f"bad = [m for m in sys.modules if m.split('.')[0] in {forbidden!r}]\n"
        "assert not bad, bad\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_optional_dependencies_are_not_imported_by_the_bus() -> None:
    code = "import sys, bus; assert not {'nats', 'uvloop'} & set(sys.modules)"
    subprocess.run([sys.executable, "-c", code], check=True)
