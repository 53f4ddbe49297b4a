"""The embedded broker's ACL mode (`kafka start --secure --acls`), without a broker."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest
import yaml

from streamlearn.kafka_local.config import BrokerConfig, server_properties
from streamlearn.kafka_local.exceptions import EmbeddedKafkaError
from streamlearn.kafka_local.secure import (
    BROKER_USER,
    CLIENT_USER,
    enable_acls,
    ensure_secure_material,
    existing_secure_material,
)


def _properties(material_config: BrokerConfig) -> dict[str, str]:
    text = server_properties(material_config)
    return dict(line.split("=", 1) for line in text.splitlines() if line)


def test_acls_add_a_user_per_part_with_its_settings_and_the_authorizer(tmp_path: Path) -> None:
    material = ensure_secure_material(tmp_path, "127.0.0.1")
    plain = _properties(BrokerConfig(tmp_path, controller_port=9093, secure=material))
    assert "authorizer.class.name" not in plain, "secure alone stays without ACLs"

    enabled = enable_acls(material, ["collector", "serve"])
    assert enabled.authorizer
    assert existing_secure_material(tmp_path) == enabled, "kept: the next start has them"
    assert set(enabled.passwords) == {
        BROKER_USER, CLIENT_USER, "streamlearn-collector", "streamlearn-serve",
    }  # fmt: skip
    assert enabled.passwords[CLIENT_USER] == material.passwords[CLIENT_USER]
    settings = yaml.safe_load(enabled.part_settings_path("serve").read_text())
    assert settings["kafka_sasl_username"] == "streamlearn-serve"
    assert settings["kafka_sasl_password"] == enabled.password("streamlearn-serve")
    for path in enabled.directory.iterdir():
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path
    assert enabled.scram_arguments().count("--add-scram") == 4
    assert enable_acls(enabled, ["collector", "serve"]) == enabled, "idempotent"

    props = _properties(BrokerConfig(tmp_path, controller_port=9093, secure=enabled))
    assert props["authorizer.class.name"].endswith("StandardAuthorizer")
    # The controller listener (PLAINTEXT: ANONYMOUS) registers the broker: a super user.
    assert set(props["super.users"].split(";")) == {
        "User:admin", "User:streamlearn", "User:ANONYMOUS",
    }  # fmt: skip
    assert props["allow.everyone.if.no.acl.found"] == "false"


def test_acls_on_a_directory_formatted_without_part_users_are_refused(tmp_path: Path) -> None:
    material = ensure_secure_material(tmp_path, "127.0.0.1")
    (material.directory / "formatted").touch()
    with pytest.raises(EmbeddedKafkaError, match="formatted without the per-part users"):
        enable_acls(material, ["collector"])
