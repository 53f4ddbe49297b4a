"""Every streamlearn HTTP server over TLS, as users run it: the collector, the prediction
worker (two processes on one port), the registry and the dashboard, each started with
STREAMLEARN_HTTP_TLS_CERTFILE. Each answers over https to a client trusting the CA, not
to plain http on its port nor to a client that does not trust the CA; our own registry
client works over TLS with STREAMLEARN_HTTP_TLS_CAFILE."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import pytest

from streamlearn.http_tls import client_ssl_context
from streamlearn.kafka_local import free_port
from streamlearn.kafka_local.secure import ensure_secure_material
from streamlearn.serde import RegistryClient, RegistryUnavailableError
from streamlearn.settings import Settings
from tests.server_process import ServerProcess

SCHEMA = json.dumps({"type": "record", "name": "T", "fields": [{"name": "a", "type": "int"}]})


@pytest.fixture
def tls_servers(
    system_settings: Settings, tmp_path: Path
) -> Iterator[tuple[dict[str, ServerProcess], Path]]:
    # A throwaway CA and a certificate for 127.0.0.1 it signed (the key in the same file).
    material = ensure_secure_material(tmp_path, "127.0.0.1")
    env = {
        "STREAMLEARN_KAFKA_BOOTSTRAP": system_settings.kafka_bootstrap,
        "STREAMLEARN_SCHEMA_REGISTRY_URL": system_settings.schema_registry_url,
        "STREAMLEARN_TOPIC_PREFIX": system_settings.topic_prefix,
        "STREAMLEARN_MODEL_SIGNING_KEY": "tls-test-signing-key",
        "STREAMLEARN_HTTP_TLS_CERTFILE": str(material.broker_pem_path),
        # What our clients trust: the dashboard scrapes the collector over TLS.
        "STREAMLEARN_HTTP_TLS_CAFILE": str(material.ca_path),
    }
    ca = str(material.ca_path)
    ports = {name: free_port() for name in ("collector", "serve", "registry", "dashboard")}
    commands = {
        "collector": ["collector", "serve"],
        "serve": ["serve", "--workers", "2"],
        "registry": ["registry", "serve"],
        "dashboard": [
            "dashboard",
            "--scrape",
            f"tls=https://127.0.0.1:{ports['collector']}/metrics",
        ],
    }
    servers = {}
    try:
        for name, args in commands.items():  # all start at once, then are waited for
            port = ports[name]
            servers[name] = ServerProcess([*args, "--port", str(port)], port, env, cafile=ca)
        for server in servers.values():
            server.wait_ready()
        yield servers, material.ca_path
    finally:
        for server in servers.values():
            server.stop()


async def test_every_http_server_speaks_tls_only(
    tls_servers: tuple[dict[str, ServerProcess], Path],
) -> None:
    servers, ca = tls_servers
    trusted = aiohttp.TCPConnector(ssl=client_ssl_context(Settings(http_tls_cafile=ca)))
    async with aiohttp.ClientSession(connector=trusted) as session:
        for name, server in servers.items():
            assert server.url.startswith("https://")
            async with session.get(f"{server.url}/healthz") as response:
                assert response.status == 200, name
        event = {"event_type": "page_view", "user_id": "u-tls", "app_version": "1"}
        async with session.post(f"{servers['collector'].url}/v1/events", json=event) as response:
            assert response.status == 202
        scraped = 'streamlearn_dashboard_scrapes_total{outcome="ok",target="tls"}'
        deadline = asyncio.get_running_loop().time() + 20
        while True:
            async with session.get(f"{servers['dashboard'].url}/metrics") as response:
                if scraped in await response.text():
                    break
            assert asyncio.get_running_loop().time() < deadline, "no TLS scrape succeeded"
            await asyncio.sleep(0.2)
    async with aiohttp.ClientSession() as session:
        for name, server in servers.items():
            plain = server.url.replace("https://", "http://")
            with pytest.raises(aiohttp.ClientError):
                async with session.get(f"{plain}/healthz") as response:
                    pytest.fail(f"{name} answered plain http with {response.status}")
            # The system's trust store does not know the development CA.
            with pytest.raises(aiohttp.ClientConnectorCertificateError):
                async with session.get(f"{server.url}/healthz"):
                    pass

    # Our registry client (every part's, and TelemetryClient's) with the CA setting.
    url = servers["registry"].url
    await asyncio.to_thread(_register_over_tls, url, ca)

    for server in servers.values():
        assert server.stop() == 0, server.output
        assert "Traceback" not in server.output, server.output
    assert "collector on https://" in servers["collector"].output
    assert "prediction worker on https://" in servers["serve"].output
    assert "2 processes" in servers["serve"].output
    assert "schema registry on https://" in servers["registry"].output
    assert "dashboard on https://" in servers["dashboard"].output


def _register_over_tls(url: str, ca: Path) -> None:
    with RegistryClient.for_settings(
        Settings(schema_registry_url=url, http_tls_cafile=ca)
    ) as registry:
        schema_id = registry.register("tls-subject-value", SCHEMA)
        assert registry.latest("tls-subject-value")[0] == schema_id
    with (
        RegistryClient.for_settings(Settings(schema_registry_url=url)) as untrusting,
        pytest.raises(RegistryUnavailableError, match="unreachable"),
    ):
        untrusting.register("tls-subject-value", SCHEMA)
