"""Which Kafka user `up` and each part it runs connect as (no broker)."""

from __future__ import annotations

from pathlib import Path

from streamlearn.kafka_local import broker_material
from streamlearn.kafka_local.secure import CLIENT_USER, PART_USER_PREFIX
from streamlearn.settings import Settings
from streamlearn.topology.acl_parts import PART_NAMES
from streamlearn.up.doors import Doors
from streamlearn.up.kafka_users import KafkaUsers
from streamlearn.up.options import UpOptions
from streamlearn.up.parts import part_specs, registry_spec

OPTIONS = UpOptions(
    embedded_kafka=True, kafka_port=9092, data_dir=None, start_registry=True,
    registry_port=8081, collector_port=8001, serve_port=8000,
)  # fmt: skip
KAFKA_VARIABLES = {
    "STREAMLEARN_KAFKA_SECURITY_PROTOCOL",
    "STREAMLEARN_KAFKA_SASL_MECHANISM",
    "STREAMLEARN_KAFKA_SASL_USERNAME",
    "STREAMLEARN_KAFKA_SASL_PASSWORD",
    "STREAMLEARN_KAFKA_SSL_CAFILE",
}


def _specs(users: KafkaUsers, settings: Settings) -> dict[str, dict[str, str]]:
    specs = [
        *part_specs(settings, OPTIONS, Doors(), users),
        registry_spec(settings, 8081, Doors(), users),
    ]
    return {spec.name: dict(spec.env) for spec in specs}


def test_a_plain_broker_leaves_every_part_on_the_settings_of_up(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path)
    users = KafkaUsers(None)
    assert users.operator(settings) is settings
    assert not users.per_part
    for name, env in _specs(users, settings).items():
        assert not KAFKA_VARIABLES & set(env), name


def test_with_acls_each_part_runs_as_its_own_user_and_up_as_the_operator(tmp_path: Path) -> None:
    material = broker_material(tmp_path / "kafka", secure=True, acls=True)
    assert material is not None
    users = KafkaUsers(material)
    assert users.per_part
    operator = users.operator(Settings(data_dir=tmp_path))
    assert operator.kafka_security_protocol == "SASL_SSL"
    assert operator.kafka_sasl_username == CLIENT_USER
    assert operator.kafka_sasl_password is not None
    assert operator.kafka_sasl_password.get_secret_value() == material.password(CLIENT_USER)
    assert operator.kafka_ssl_cafile == material.ca_path

    specs = _specs(users, operator)
    assert set(specs) <= set(PART_NAMES), "every part `up` runs has a user and ACLs"
    assert len(specs) == 10
    for name, env in specs.items():
        user = PART_USER_PREFIX + name
        assert env["STREAMLEARN_KAFKA_SASL_USERNAME"] == user
        assert env["STREAMLEARN_KAFKA_SASL_PASSWORD"] == material.password(user)
        assert env["STREAMLEARN_KAFKA_SECURITY_PROTOCOL"] == "SASL_SSL"
        assert env["STREAMLEARN_KAFKA_SSL_CAFILE"] == str(material.ca_path)
        # Least privilege: no part holds another's password, nor the operator's.
        others = set(material.passwords.values()) - {material.password(user)}
        assert not others & set(env.values()), name


def test_a_secure_broker_without_acls_runs_every_part_as_the_one_client_user(
    tmp_path: Path,
) -> None:
    material = broker_material(tmp_path / "kafka", secure=True, acls=False)
    assert material is not None
    users = KafkaUsers(material)
    assert not users.per_part
    for name, env in _specs(users, users.operator(Settings(data_dir=tmp_path))).items():
        assert env["STREAMLEARN_KAFKA_SASL_USERNAME"] == CLIENT_USER, name


def test_no_password_shows_in_a_part_spec_repr(tmp_path: Path) -> None:
    material = broker_material(tmp_path / "kafka", secure=True, acls=True)
    assert material is not None
    users = KafkaUsers(material)
    settings = users.operator(Settings(data_dir=tmp_path, model_signing_key="k" * 32))
    written = repr(part_specs(settings, OPTIONS, Doors(), users)) + repr(settings)
    for password in material.passwords.values():
        assert password not in written
    assert "k" * 32 not in written


def test_secure_with_a_cluster_of_your_own_is_refused_naming_what_to_do() -> None:
    from typer.testing import CliRunner

    from streamlearn.cli import app

    result = CliRunner().invoke(app, ["up", "--secure", "--bootstrap-servers", "127.0.0.1:1"])
    assert result.exit_code == 1
    assert "--secure runs the embedded broker" in result.stderr
    assert "STREAMLEARN_CONFIG_FILE" in result.stderr
