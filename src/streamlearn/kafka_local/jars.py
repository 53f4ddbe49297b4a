"""The broker's classpath: pinned jars from Maven Central, verified by sha256, cached.

The jar list lives in ``kafka-jars.lock.json`` beside this module (regenerate it with
``scripts/lock_kafka_jars.py``); it is the one place the Kafka version is pinned. Every
jar is checked against its sha256 each time the classpath is prepared, so a corrupted or
tampered cache entry is fetched again instead of being run.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import tempfile
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from streamlearn.kafka_local.exceptions import ChecksumMismatchError, JarFetchError

log = logging.getLogger(__name__)

LOCK_FILE_NAME = "kafka-jars.lock.json"
_CHUNK = 1 << 20


@dataclass(frozen=True)
class PinnedJar:
    group: str
    artifact: str
    version: str
    size: int
    sha256: str

    @property
    def file_name(self) -> str:
        return f"{self.artifact}-{self.version}.jar"

    def url(self, repository: str) -> str:
        group_path = self.group.replace(".", "/")
        return (
            f"{repository.rstrip('/')}/{group_path}/{self.artifact}/{self.version}/{self.file_name}"
        )


@dataclass(frozen=True)
class JarLock:
    kafka_version: str
    scala_version: str
    reason: str
    jars: tuple[PinnedJar, ...]

    @classmethod
    def from_json(cls, text: str) -> JarLock:
        data = json.loads(text)
        return cls(
            kafka_version=data["kafka_version"],
            scala_version=data["scala_version"],
            reason=data.get("reason", ""),
            jars=tuple(
                PinnedJar(**{k: j[k] for k in ("group", "artifact", "version", "size", "sha256")})
                for j in data["jars"]
            ),
        )


def load_lock() -> JarLock:
    """The lock shipped with the package."""
    text = resources.files("streamlearn.kafka_local").joinpath(LOCK_FILE_NAME).read_text()
    return JarLock.from_json(text)


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def jar_dir(cache_dir: Path, lock: JarLock) -> Path:
    return cache_dir / f"kafka-{lock.kafka_version}"


def _download(jar: PinnedJar, repository: str, destination: Path, timeout_s: float) -> None:
    """Download into a temporary file beside the destination; rename only once verified."""
    url = jar.url(repository)
    destination.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{jar.file_name}.", dir=destination.parent)
    tmp = Path(tmp_name)
    try:
        digest = hashlib.sha256()
        with os.fdopen(fd, "wb") as out, urllib.request.urlopen(url, timeout=timeout_s) as resp:  # noqa: S310 - repository URL is an http(s) setting
            while chunk := resp.read(_CHUNK):
                digest.update(chunk)
                out.write(chunk)
        actual = digest.hexdigest()
        if actual != jar.sha256:
            raise ChecksumMismatchError(
                f"{url}: sha256 {actual} does not match the pinned {jar.sha256}; "
                "refusing to use it (is the repository or a proxy serving other bytes?)"
            )
        os.replace(tmp, destination)
    except (urllib.error.URLError, OSError) as exc:
        raise JarFetchError(f"cannot download {url}: {exc}") from exc
    finally:
        tmp.unlink(missing_ok=True)


def ensure_jars(
    cache_dir: Path,
    repository: str,
    lock: JarLock | None = None,
    *,
    timeout_s: float = 60.0,
    on_fetch: Callable[[PinnedJar, int, int], None] | None = None,
) -> list[Path]:
    """Return the verified classpath, downloading missing or corrupt jars first.

    ``on_fetch(jar, index, total)`` is called before each download (for progress output).
    """
    lock = lock or load_lock()
    directory = jar_dir(cache_dir, lock)
    paths: list[Path] = []
    total = len(lock.jars)
    for index, jar in enumerate(lock.jars, start=1):
        path = directory / jar.file_name
        if path.exists():
            if sha256_of(path) == jar.sha256:
                paths.append(path)
                continue
            log.warning("cached %s fails its sha256 check; fetching it again", path)
            path.unlink()
        if on_fetch is not None:
            on_fetch(jar, index, total)
        _download(jar, repository, path, timeout_s)
        paths.append(path)
    return paths
