"""What the embedded broker's Java processes are started with that no other local user may
read: their arguments past the main class (in a private ``@file``, not on the command line
that ``ps -ef`` shows) and an environment without streamlearn's settings."""

from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import Iterator
from pathlib import Path

from streamlearn.settings import ENV_PREFIX


def java_environment() -> dict[str, str]:
    """This process's environment without streamlearn's settings, for the broker's JVMs.

    They read none of them, and under ``up`` that environment holds every secret given to
    it (API tokens, write keys, the signing and pseudonymisation keys): a process's
    environment is readable in ``/proc/<pid>/environ``, and the docs promise each secret
    only to the parts that use it.
    """
    return {name: value for name, value in os.environ.items() if not name.startswith(ENV_PREFIX)}


def _argument_file_line(argument: str) -> str:
    """``argument`` as one line of a Java ``@file``: quoted, its quotes and backslashes
    escaped (the launcher unescapes them inside quotes)."""
    return '"' + argument.replace("\\", "\\\\").replace('"', '\\"') + '"'


@contextlib.contextmanager
def argument_file(directory: Path, main_class: str, args: list[str]) -> Iterator[str]:
    """A private Java ``@file`` holding ``main_class`` and ``args``, removed afterwards.

    What follows the main class on a JVM's command line is in ``/proc/<pid>/cmdline`` for
    every local user to read (``ps -ef``); the launcher reads the rest of an argument file
    that names the main class as the program's arguments, so secrets go there instead.
    """
    path = directory / f"java-arguments-{uuid.uuid4().hex}"
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "w") as file:
        file.write("\n".join(_argument_file_line(a) for a in [main_class, *args]) + "\n")
    try:
        yield f"@{path}"
    finally:
        path.unlink(missing_ok=True)
