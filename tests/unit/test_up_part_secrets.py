"""Which secret settings each part `up` starts may hold: the ones it uses, as the Helm
chart gives them (no broker; the children's environment as `up` builds it)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from pydantic import SecretStr

from streamlearn.secret_settings import SECRET_SETTING_NAMES
from streamlearn.settings import WITHHELD_ENV, Settings
from streamlearn.up.children import ChildSpec, child_environment
from streamlearn.up.doors import Doors
from streamlearn.up.kafka_users import KafkaUsers
from streamlearn.up.options import UpOptions
from streamlearn.up.parts import part_specs, registry_spec

OPTIONS = UpOptions(
    embedded_kafka=True, kafka_port=9092, data_dir=None, start_registry=True,
    registry_port=8081, collector_port=8001, serve_port=8000,
)  # fmt: skip
SHELL = {
    "STREAMLEARN_SERVE_API_TOKENS": json.dumps(["tok-aaaaaaaaaaaaaaaa"]),
    "STREAMLEARN_COLLECTOR_WRITE_KEYS": json.dumps({"wk-bbbbbbbbbbbbbbbb": "shop-web"}),
    "STREAMLEARN_REGISTRY_WRITERS": json.dumps(["ops:cccccccccccccccc"]),
    "STREAMLEARN_SCHEMA_REGISTRY_BASIC_AUTH": "ops:cccccccccccccccc",
    "STREAMLEARN_PSEUDONYMISATION_KEY": "pseudo-dddddddddddddddd",
    "STREAMLEARN_DASHBOARD_API_TOKENS": json.dumps(["dash-eeeeeeeeeeeeeeee"]),
    "STREAMLEARN_DASHBOARD_USERS": json.dumps(["ops:ffffffffffffffff"]),
}
SIGNING = ("model_signing_key", "model_previous_signing_key")
KAFKA = {"kafka_sasl_password", "kafka_ssl_key_password"}  # each part's own (KafkaUsers)
USES = {
    "serve": {"serve_api_tokens", "schema_registry_basic_auth", *SIGNING},
    "collector": {"collector_write_keys", "schema_registry_basic_auth"},
    "registry": {"registry_writers"},
    "learner": {"schema_registry_basic_auth", *SIGNING},
    "preprocess": {"schema_registry_basic_auth", "pseudonymisation_key"},
    "sessionise": {"schema_registry_basic_auth"},
    "label-join": {"schema_registry_basic_auth"},
    "monitor": {"schema_registry_basic_auth"},
    "archive": {"schema_registry_basic_auth"},
    # It reads schemas only, but a registry of `up --schema-registry-url` may ask a login
    # for reads too.
    # Its own login (the page's and the API's) too.
    "dashboard": {"schema_registry_basic_auth", "dashboard_api_tokens", "dashboard_users"},
}


def _every_part(data_dir: Path) -> list[ChildSpec]:
    """Every part `up` starts, with the environment's secrets as `up` hands them on."""
    settings = Settings(data_dir=data_dir, model_signing_key=SecretStr("k" * 32))
    users = KafkaUsers(None)
    return [
        *part_specs(settings, OPTIONS, Doors(), users),
        registry_spec(settings, 8081, Doors(), users),
    ]


def test_each_part_holds_only_the_secrets_it_uses(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Found by a new user: every part `up` started held every secret in its environment
    (`/proc/<pid>/environ`): the collector, which faces the internet, held the signing key
    every worker trusts, the API tokens and the registry writers' passwords."""
    for variable, value in SHELL.items():
        monkeypatch.setenv(variable, value)
    specs = _every_part(tmp_path)
    assert {spec.name for spec in specs} == set(USES)
    for spec in specs:
        env = child_environment(spec)
        held = {name for name in SECRET_SETTING_NAMES if f"STREAMLEARN_{name.upper()}" in env}
        # (No previous key: no rotation under way.)
        assert held == USES[spec.name] - {"model_previous_signing_key"}, spec.name
        # Nor read from a `.env` or config file: the part withholds the others.
        withheld = set(env.get(WITHHELD_ENV, "").split(",")) - {""}
        assert withheld == SECRET_SETTING_NAMES - USES[spec.name] - KAFKA, spec.name


def test_only_the_archive_holds_the_object_store_s_credentials(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Found by a security pass: every part `up` started inherited `AWS_*` credentials
    from its shell (the collector, which faces the internet, included), while only the
    archive writes to an object store."""
    credentials = {
        "AWS_ACCESS_KEY_ID": "AKIAEXAMPLEEXAMPLE00",
        "AWS_SECRET_ACCESS_KEY": "secret-eeeeeeeeeeeeeeee",
        "AWS_SESSION_TOKEN": "session-ffffffffffffffff",
    }
    for variable, value in credentials.items():
        monkeypatch.setenv(variable, value)
    specs = _every_part(tmp_path)
    for spec in specs:
        env = child_environment(spec)
        held = {variable for variable in credentials if variable in env}
        assert held == (set(credentials) if spec.name == "archive" else set()), spec.name
