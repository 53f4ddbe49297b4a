"""The collector fuzzed from its own OpenAPI document with schemathesis: every answer is one
the document declares (status, content type, body schema, headers), no 5xx, and requests
the document calls invalid are refused."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator

import pytest
from schemathesis.specs.openapi.checks import positive_data_acceptance

from streamlearn.kafka_local import free_port
from streamlearn.settings import Settings
from tests.support import RegistryProcess, fuzz_from_document


@pytest.fixture
def collector_api(system_settings: Settings) -> Iterator[str]:
    """`streamlearn collector serve` in its own process, and its document."""
    port = free_port()
    env = {
        **os.environ,
        "STREAMLEARN_KAFKA_BOOTSTRAP": system_settings.kafka_bootstrap,
        "STREAMLEARN_SCHEMA_REGISTRY_URL": system_settings.schema_registry_url,
        "STREAMLEARN_TOPIC_PREFIX": system_settings.topic_prefix,
        "STREAMLEARN_COLLECTOR_MAX_BATCH": "20",
        "STREAMLEARN_LOG_LEVEL": "WARNING",
    }
    process = subprocess.Popen(
        [sys.executable, "-m", "streamlearn", "collector", "serve", "--port", str(port)],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                with urllib.request.urlopen(f"{url}/healthz", timeout=2):
                    break
            except OSError:
                assert process.poll() is None, process.communicate()[1]
                assert time.monotonic() < deadline, "the collector did not start"
                time.sleep(0.2)
        yield f"{url}/openapi.json"
    finally:
        process.terminate()
        _, stderr = process.communicate(timeout=30)
        assert process.returncode == 0, stderr
        assert "Traceback" not in stderr, stderr


def test_the_collector_answers_as_its_document_says(collector_api: str) -> None:
    checked = fuzz_from_document(collector_api)
    assert {"POST /v1/events", "GET /healthz", "GET /metrics"} <= checked


def test_the_registry_answers_as_its_document_says(
    start_registry: Callable[[str], RegistryProcess], unique_name: Callable[[str], str]
) -> None:
    # Its own registry (its own _schemas topic): the fuzz deletes subjects and sets levels.
    registry = start_registry(unique_name("fuzz") + ".")
    # A schema-valid request may still name no subject, or carry a string that is not an
    # Avro schema: refusing those (404, 422) is right, and no JSON schema can say which
    # strings parse as Avro. Every other check stands.
    checked = fuzz_from_document(
        f"{registry.url}/openapi.json", excluded_checks=[positive_data_acceptance]
    )
    assert {"POST /subjects/{subject}/versions", "PUT /config", "GET /schemas/ids/{id}"} <= checked
