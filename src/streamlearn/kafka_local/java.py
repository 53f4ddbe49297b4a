"""Find a Java runtime that can run the broker (Kafka 4 needs Java 17 or newer)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from streamlearn.kafka_local.exceptions import JavaNotFoundError

MIN_JAVA_MAJOR = 17

HOW_TO_FIX = (
    "install a Java 17+ runtime (e.g. `sudo apt-get install openjdk-17-jre-headless`) and put "
    "it on PATH or set JAVA_HOME, or run Kafka with Docker "
    "(`docker compose -f docker-compose.kafka.yml up -d`) and give its address (`up "
    "--bootstrap-servers`, or STREAMLEARN_KAFKA_BOOTSTRAP for the other commands)"
)

_VERSION = re.compile(r'version "(\d+)(?:\.(\d+))?[^"]*"')


@dataclass(frozen=True)
class JavaRuntime:
    executable: Path
    major: int


def parse_java_major(version_output: str) -> int | None:
    """The major version from `java -version` output ("1.8.0_x" is 8, "17.0.15" is 17)."""
    match = _VERSION.search(version_output)
    if match is None:
        return None
    first, second = int(match.group(1)), match.group(2)
    return int(second) if first == 1 and second is not None else first


def find_java() -> JavaRuntime:
    """The Java runtime to use: ``$JAVA_HOME/bin/java`` if set, else ``java`` on PATH."""
    java_home = os.environ.get("JAVA_HOME")
    candidate = Path(java_home) / "bin" / "java" if java_home else None
    if candidate is None or not candidate.is_file():
        found = shutil.which("java")
        candidate = Path(found) if found else None
    if candidate is None:
        raise JavaNotFoundError(f"no Java runtime found: {HOW_TO_FIX}")
    try:
        probe = subprocess.run(
            [str(candidate), "-version"], capture_output=True, text=True, timeout=30, check=False
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise JavaNotFoundError(f"{candidate} does not run ({exc}): {HOW_TO_FIX}") from exc
    major = parse_java_major(probe.stderr + probe.stdout)
    if major is None:
        raise JavaNotFoundError(f"{candidate} did not report a version: {HOW_TO_FIX}")
    if major < MIN_JAVA_MAJOR:
        raise JavaNotFoundError(
            f"{candidate} is Java {major}, Kafka needs {MIN_JAVA_MAJOR}+: {HOW_TO_FIX}"
        )
    return JavaRuntime(executable=candidate, major=major)
