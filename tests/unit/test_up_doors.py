"""How `up` and its simulator reach servers whose doors are on."""

from __future__ import annotations

from pathlib import Path

from pydantic import SecretStr

from streamlearn.kafka_local.secure import ensure_secure_material
from streamlearn.settings import Settings
from streamlearn.simulate.loop import LoopOptions, Simulator
from streamlearn.simulate.traffic import Traffic, TrafficConfig
from streamlearn.up.doors import Doors


def test_doors_off_is_plain_http_without_credentials() -> None:
    doors = Doors.from_settings(Settings())
    assert doors.url(8000, "/healthz") == "http://127.0.0.1:8000/healthz"
    assert doors.client_ssl is None
    assert doors.api_headers == {}
    assert doors.write_key is None


def test_doors_on_is_https_verified_with_the_ca_and_the_first_credentials(
    tmp_path: Path,
) -> None:
    material = ensure_secure_material(tmp_path, "127.0.0.1")
    settings = Settings(
        http_tls_certfile=material.broker_pem_path,
        http_tls_cafile=material.ca_path,
        serve_api_tokens=[SecretStr("token-one-0123456"), SecretStr("token-two-0123456")],
        collector_write_keys={
            SecretStr("key-of-shop-01234"): "shop",
            SecretStr("key-of-app-012345"): "app",
        },
    )
    doors = Doors.from_settings(settings)
    assert doors.url(8001) == "https://127.0.0.1:8001"
    assert doors.client_ssl is not None
    assert doors.client_ssl.get_ca_certs()  # the configured CA, not only the system's
    assert doors.api_headers == {"Authorization": "Bearer token-one-0123456"}
    assert doors.write_key == "key-of-app-012345"  # the first app by name, the same every run
    assert "token-one-0123456" not in repr(doors)
    assert "key-of-app-012345" not in repr(doors)


def test_the_simulator_sends_each_secret_only_to_the_server_that_wants_it() -> None:
    options = LoopOptions(write_key="the-write-key", api_token="the-token")
    config = TrafficConfig()
    simulator = Simulator(config, options, Traffic(config, start_ms=0))
    assert simulator.events_headers == {"X-Streamlearn-Write-Key": "the-write-key"}
    assert simulator.predict_headers == {"Authorization": "Bearer the-token"}
    assert "the-write-key" not in repr(options)
    assert "the-token" not in repr(options)
