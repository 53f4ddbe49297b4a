"""A package's names loaded on first use (PEP 562): importing one light module of a
package runs the package's ``__init__``, which must not import its heavy modules for it.
A package lists where each name lives and sets ``__getattr__ = lazy_names(...)``; it imports
the same names under ``TYPE_CHECKING`` so the type checker sees them as before."""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from typing import Any


def lazy_names(
    package: str, homes: Mapping[str, str], namespace: dict[str, Any]
) -> Callable[[str], Any]:
    """The ``__getattr__`` of ``package``: name → its value in the submodule ``homes`` names
    (relative to the package), kept in ``namespace`` (the package's globals) once looked up."""

    def load(name: str) -> Any:
        home = homes.get(name)
        if home is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(f"{package}.{home}"), name)
        namespace[name] = value
        return value

    return load
