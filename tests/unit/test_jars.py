"""The jar cache against a local HTTP repository: download, verify, refetch, refuse."""

from __future__ import annotations

import hashlib
import re
import threading
from collections.abc import Iterator
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from streamlearn.kafka_local.exceptions import ChecksumMismatchError, JarFetchError
from streamlearn.kafka_local.jars import JarLock, PinnedJar, ensure_jars, jar_dir, load_lock

JAR_BYTES = {"alpha": b"PK\x03\x04 alpha jar bytes", "beta": b"PK\x03\x04 beta jar bytes" * 1000}


def _pinned(artifact: str, data: bytes) -> PinnedJar:
    return PinnedJar("org.example", artifact, "1.0", len(data), hashlib.sha256(data).hexdigest())


@pytest.fixture
def lock() -> JarLock:
    return JarLock("9.9.9", "2.13", "test", tuple(_pinned(a, d) for a, d in JAR_BYTES.items()))


@pytest.fixture
def repository(tmp_path: Path, lock: JarLock) -> Iterator[tuple[str, Path]]:
    """A Maven-layout repository served over HTTP on loopback."""
    root = tmp_path / "repo"
    for jar in lock.jars:
        path = root / "org/example" / jar.artifact / jar.version / jar.file_name
        path.parent.mkdir(parents=True)
        path.write_bytes(JAR_BYTES[jar.artifact])

    class Handler(SimpleHTTPRequestHandler):
        def __init__(self, *args, **kwargs) -> None:  # type: ignore[no-untyped-def]
            super().__init__(*args, directory=str(root), **kwargs)

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", root
    finally:
        server.shutdown()
        server.server_close()


def test_downloads_and_verifies_every_jar(tmp_path: Path, lock: JarLock, repository) -> None:
    url, _ = repository
    fetched: list[str] = []
    paths = ensure_jars(
        tmp_path / "cache", url, lock, on_fetch=lambda j, i, n: fetched.append(j.artifact)
    )
    assert fetched == ["alpha", "beta"]
    assert [p.read_bytes() for p in paths] == [JAR_BYTES["alpha"], JAR_BYTES["beta"]]
    assert paths[0].parent == jar_dir(tmp_path / "cache", lock)


def test_cache_is_reused(tmp_path: Path, lock: JarLock, repository) -> None:
    url, _ = repository
    ensure_jars(tmp_path / "cache", url, lock)
    fetched: list[str] = []
    ensure_jars(tmp_path / "cache", url, lock, on_fetch=lambda j, i, n: fetched.append(j.artifact))
    assert fetched == []


def test_corrupted_cached_jar_is_fetched_again(tmp_path: Path, lock: JarLock, repository) -> None:
    url, _ = repository
    paths = ensure_jars(tmp_path / "cache", url, lock)
    paths[1].write_bytes(b"tampered")
    fetched: list[str] = []
    again = ensure_jars(
        tmp_path / "cache", url, lock, on_fetch=lambda j, i, n: fetched.append(j.artifact)
    )
    assert fetched == ["beta"]
    assert again[1].read_bytes() == JAR_BYTES["beta"]


def test_repository_serving_other_bytes_is_refused(
    tmp_path: Path, lock: JarLock, repository
) -> None:
    url, root = repository
    (root / "org/example/beta/1.0/beta-1.0.jar").write_bytes(b"something else entirely")
    cache = tmp_path / "cache"
    with pytest.raises(ChecksumMismatchError, match="does not match the pinned"):
        ensure_jars(cache, url, lock)
    leftovers = sorted(p.name for p in jar_dir(cache, lock).iterdir())
    assert leftovers == ["alpha-1.0.jar"], "an unverified jar must never be left in the cache"


def test_missing_jar_is_a_fetch_error(tmp_path: Path, lock: JarLock, repository) -> None:
    url, root = repository
    (root / "org/example/alpha/1.0/alpha-1.0.jar").unlink()
    with pytest.raises(JarFetchError, match="404"):
        ensure_jars(tmp_path / "cache", url, lock)


def test_shipped_lock_pins_one_kafka_version_with_checksums() -> None:
    lock = load_lock()
    assert re.fullmatch(r"\d+\.\d+\.\d+", lock.kafka_version)
    assert lock.reason, "the lock must say why this Kafka version is pinned"
    names = {jar.artifact: jar for jar in lock.jars}
    assert names[f"kafka_{lock.scala_version}"].version == lock.kafka_version
    assert names["kafka-clients"].version == lock.kafka_version
    # The POM brings no logging backend; the lock must add one.
    assert "log4j-core" in names
    assert any(a.startswith("log4j-slf4j") for a in names)
    for jar in lock.jars:
        assert re.fullmatch(r"[0-9a-f]{64}", jar.sha256), jar
        assert jar.size > 0
