from __future__ import annotations

import json
from pathlib import Path

import pytest
from pydantic import SecretStr
from typer.testing import CliRunner

from streamlearn import cli, kafka_clients
from streamlearn.cli import app
from streamlearn.exceptions import ConfigurationError
from streamlearn.kafka_clients import aiokafka_config, confluent_config
from streamlearn.log_repeats import LIBRDKAFKA_LOG
from streamlearn.settings import WITHHELD_ENV, Settings
from streamlearn.settings_loading import load_settings, unknown_variables
from streamlearn.settings_table import settings_table
from streamlearn.settings_values import shown_setting


def test_environment_variables_are_read(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STREAMLEARN_KAFKA_BOOTSTRAP", "broker-1:9093,broker-2:9093")
    monkeypatch.setenv("STREAMLEARN_SCHEMA_REGISTRY_URL", "http://registry:8081")
    settings = load_settings()
    assert settings.kafka_bootstrap == "broker-1:9093,broker-2:9093"
    assert settings.schema_registry_url == "http://registry:8081"


def test_settings_are_frozen() -> None:
    settings = Settings()
    with pytest.raises(ValueError, match="frozen"):
        settings.kafka_bootstrap = "elsewhere:9092"  # type: ignore[misc]


def test_secrets_never_appear_in_repr_or_config_show(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STREAMLEARN_KAFKA_SASL_PASSWORD", "hunter2-sasl")
    monkeypatch.setenv("STREAMLEARN_MODEL_SIGNING_KEY", "hunter2-hmac-signing")
    settings = load_settings()
    assert "hunter2" not in repr(settings)
    assert "hunter2" not in str(settings)
    result = CliRunner().invoke(app, ["config", "show"])
    assert result.exit_code == 0, result.output
    assert "hunter2" not in result.output
    assert "kafka_sasl_password = **********" in result.output


def test_config_show_prints_values_not_python_reprs(monkeypatch: pytest.MonkeyPatch) -> None:
    """Found by a new user: `serve_api_tokens = [SecretStr('**********')]`."""
    monkeypatch.setenv("STREAMLEARN_SERVE_API_TOKENS", '["tok-a-0123456789", "tok-b-0123456789"]')
    monkeypatch.setenv("STREAMLEARN_COLLECTOR_WRITE_KEYS", '{"wk-1-0123456789ab": "shop-web"}')
    result = CliRunner().invoke(app, ["config", "show"])
    assert result.exit_code == 0, result.output
    assert "SecretStr" not in result.output
    assert 'serve_api_tokens = ["**********", "**********"]' in result.output
    assert 'collector_write_keys = {"********** (1)": "shop-web"}' in result.output
    assert 'models = ["ctr"]' in result.output
    assert "tok-a-0123456789" not in result.output
    assert "wk-1" not in result.output


def test_invalid_value_names_the_environment_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STREAMLEARN_KAFKA_SECURITY_PROTOCOL", "CARRIER_PIGEON")
    with pytest.raises(ConfigurationError, match="STREAMLEARN_KAFKA_SECURITY_PROTOCOL"):
        load_settings()


@pytest.mark.parametrize(
    ("variable", "value", "complaint"),
    [
        ("STREAMLEARN_LABEL_HORIZON_S", "inf", "finite"),
        ("STREAMLEARN_LABEL_HORIZON_S", "1e300", "less than or equal to 2592000"),
        ("STREAMLEARN_LABEL_ALLOWED_LATENESS_S", "inf", "finite"),
        ("STREAMLEARN_SESSION_GAP_S", "inf", "finite"),
    ],
)
def test_an_infinite_or_overlong_duration_is_refused_naming_its_variable(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str, complaint: str
) -> None:
    """`inf` passed `gt=0`, and label-join crashed with a traceback turning the horizon into
    milliseconds (1e300: a timestamp beyond 64 bits); the learner published a spec whose
    horizon was inf, which the workers then refused."""
    monkeypatch.setenv(variable, value)
    with pytest.raises(ConfigurationError, match=f"{variable}.*{complaint}"):
        load_settings()


def test_unknown_setting_is_refused() -> None:
    with pytest.raises(ConfigurationError, match="kafka_bootstrapp"):
        load_settings(kafka_bootstrapp="typo:9092")


def test_yaml_config_file_has_lower_priority_than_environment(
    monkeypatch: pytest.MonkeyPatch, tmp_path
) -> None:
    config = tmp_path / "streamlearn.yaml"
    config.write_text("kafka_bootstrap: from-file:9092\nschema_registry_url: http://file:8081\n")
    monkeypatch.setenv("STREAMLEARN_CONFIG_FILE", str(config))
    monkeypatch.setenv("STREAMLEARN_SCHEMA_REGISTRY_URL", "http://env:8081")
    settings = load_settings()
    assert settings.kafka_bootstrap == "from-file:9092"
    assert settings.schema_registry_url == "http://env:8081"


def test_missing_config_file_is_a_clear_error(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:
    monkeypatch.setenv("STREAMLEARN_CONFIG_FILE", str(tmp_path / "absent.yaml"))
    with pytest.raises(ConfigurationError, match="no such file"):
        load_settings()


def test_security_settings_reach_both_kafka_clients(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(kafka_clients, "_log_level", kafka_clients.LOG_NOTICE)  # long-running
    settings = Settings(
        kafka_bootstrap="b:9094",
        kafka_security_protocol="SASL_PLAINTEXT",
        kafka_sasl_mechanism="SCRAM-SHA-512",
        kafka_sasl_username="learner",
        kafka_sasl_password="s3cret",
    )
    confluent = confluent_config(settings, **{"group.id": "g"})
    assert confluent == {
        "bootstrap.servers": "b:9094",
        "security.protocol": "SASL_PLAINTEXT",
        "log_level": 5,  # not librdkafka's informational lines
        "logger": LIBRDKAFKA_LOG,  # each kind of line once per 10 s
        "sasl.mechanism": "SCRAM-SHA-512",
        "sasl.username": "learner",
        "sasl.password": "s3cret",
        "group.id": "g",
    }
    aio = aiokafka_config(settings)
    assert aio["security_protocol"] == "SASL_PLAINTEXT"
    assert aio["sasl_mechanism"] == "SCRAM-SHA-512"
    assert aio["sasl_plain_username"] == "learner"
    assert aio["sasl_plain_password"] == "s3cret"
    assert "ssl_context" not in aio


def test_settings_table_documents_every_setting() -> None:
    table = settings_table()
    for name, field in Settings.model_fields.items():
        assert f"`STREAMLEARN_{name.upper()}`" in table
        assert field.description, f"setting {name} has no docstring"


def test_each_setting_is_one_row_of_the_table_whatever_its_docstrings_lines() -> None:
    # A Markdown table row cannot span lines: a docstring wrapped over several lines
    # must still give one row.
    rows = settings_table().splitlines()
    assert len(rows) == 2 + len(Settings.model_fields) + 2  # + the config file, the withheld
    assert all(row.startswith("| ") and row.endswith(" |") for row in rows[2:])


@pytest.mark.parametrize(
    ("variable", "value", "example"),
    [
        ("STREAMLEARN_MODELS", "ctr_tree,ctr", """STREAMLEARN_MODELS='["ctr"]'"""),
        (
            "STREAMLEARN_SERVE_API_TOKENS",
            "tok-abc",
            """STREAMLEARN_SERVE_API_TOKENS='["a", "b"]'""",
        ),
        (
            "STREAMLEARN_COLLECTOR_WRITE_KEYS",
            "k1",
            """STREAMLEARN_COLLECTOR_WRITE_KEYS='{"k": "v"}'""",
        ),
    ],
)
def test_a_list_or_map_setting_that_is_not_json_is_a_clear_error(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str, example: str
) -> None:
    """``STREAMLEARN_MODELS=ctr`` printed pydantic-settings' traceback ("error parsing value
    for field "models" from source "EnvSettingsSource"") instead of the one-line error
    every other bad setting gets (found by trying ``config show``)."""
    monkeypatch.setenv(variable, value)
    with pytest.raises(ConfigurationError) as refused:
        load_settings()
    assert str(refused.value) == (
        f"invalid settings: {variable}: not JSON; this setting is written as JSON, e.g. {example}"
    )
    assert value not in str(refused.value), "the value may be a secret: never repeated"


@pytest.mark.parametrize("url", ["notaurl", "ftp://registry:8081", "http://", "http://h:99999"])
def test_a_registry_url_that_is_no_http_url_is_refused_naming_it(
    monkeypatch: pytest.MonkeyPatch, url: str
) -> None:
    monkeypatch.setenv("STREAMLEARN_SCHEMA_REGISTRY_URL", url)
    with pytest.raises(ConfigurationError, match=r"STREAMLEARN_SCHEMA_REGISTRY_URL.*http://"):
        load_settings()


def test_a_variable_that_is_no_setting_is_named_with_the_closest_setting(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """STREAMLEARN_KAFKA_BOOTSTRAP_SERVERS (Kafka's own word) used to be ignored without a
    word, and the default broker used."""
    monkeypatch.setenv("STREAMLEARN_KAFKA_BOOTSTRAP_SERVERS", "10.0.0.7:9092")
    monkeypatch.setenv("STREAMLEARN_CONFIG_FILE", "")
    with caplog.at_level("WARNING", logger="streamlearn.settings_loading"):
        settings = load_settings()
    assert settings.kafka_bootstrap != "10.0.0.7:9092"
    assert (
        "STREAMLEARN_KAFKA_BOOTSTRAP_SERVERS is not a setting (did you mean "
        "STREAMLEARN_KAFKA_BOOTSTRAP?); it is ignored"
    ) in [r.getMessage() for r in caplog.records]
    assert not [r for r in caplog.records if "STREAMLEARN_CONFIG_FILE" in r.getMessage()]


@pytest.mark.parametrize(
    "origin",
    [
        "https://shop.example/",
        "shop.example",
        "https://a/b",
        # Browsers leave the scheme's default port out: it was taken and never matched.
        "https://shop.example:443",
        "http://shop.example:80",
    ],
)
def test_a_cors_origin_no_browser_sends_is_refused_naming_it(
    monkeypatch: pytest.MonkeyPatch, origin: str
) -> None:
    """``https://shop.example/`` was taken, and every post from that shop's pages refused:
    a browser's Origin header never has the slash."""
    monkeypatch.setenv("STREAMLEARN_COLLECTOR_CORS_ORIGINS", json.dumps([origin]))
    with pytest.raises(ConfigurationError, match="STREAMLEARN_COLLECTOR_CORS_ORIGINS"):
        load_settings()


def test_a_registry_url_holding_a_password_is_refused_naming_the_secret_setting(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Found by a new user of the chart: `https://user:pw@reg.example.com` was taken, and
    the password went into the ConfigMap, `config show`, the helm test's arguments and the
    notes. A password goes in STREAMLEARN_SCHEMA_REGISTRY_BASIC_AUTH, a secret."""
    monkeypatch.setenv("STREAMLEARN_SCHEMA_REGISTRY_URL", "https://user:pw-s3cret@reg.example")
    with pytest.raises(ConfigurationError, match="STREAMLEARN_SCHEMA_REGISTRY_URL") as refused:
        load_settings()
    assert "STREAMLEARN_SCHEMA_REGISTRY_BASIC_AUTH" in str(refused.value)
    assert "pw-s3cret" not in str(refused.value)


@pytest.mark.parametrize(
    ("origin", "written"),
    [
        ("http://LocalHost:19310", "http://localhost:19310"),
        ("HTTPS://shop.example", None),
        ("https://b\u00fccher.example", "https://xn--bcher-kva.example"),
    ],
)
def test_an_origin_host_as_no_browser_sends_it_is_refused_saying_how_it_is_sent(
    monkeypatch: pytest.MonkeyPatch, origin: str, written: str | None
) -> None:
    """Found by a new user: `http://LocalHost:19310` and `https://bücher.example` were
    taken and matched no page: browsers send the host in lower case, and in punycode."""
    monkeypatch.setenv("STREAMLEARN_COLLECTOR_CORS_ORIGINS", json.dumps([origin]))
    with pytest.raises(ConfigurationError, match="STREAMLEARN_COLLECTOR_CORS_ORIGINS") as refused:
        load_settings()
    if written is not None:
        assert f"write {written}" in str(refused.value)


@pytest.mark.parametrize("origin", ["http://*.example", "https://*", "https://shop*.example"])
def test_a_wildcard_origin_is_refused_as_matching_nothing(
    monkeypatch: pytest.MonkeyPatch, origin: str
) -> None:
    """Found by a new user: `http://*.example` was taken (`*` and `null` are refused):
    origins are matched exactly, so it allowed no page and looked as if it allowed all."""
    monkeypatch.setenv("STREAMLEARN_COLLECTOR_CORS_ORIGINS", json.dumps([origin]))
    with pytest.raises(ConfigurationError, match="matched exactly: list each origin"):
        load_settings()


def test_origins_as_browsers_send_them_are_taken(monkeypatch: pytest.MonkeyPatch) -> None:
    origins = ["https://shop.example", "http://127.0.0.1:8080", "https://[::1]:8443"]
    monkeypatch.setenv("STREAMLEARN_COLLECTOR_CORS_ORIGINS", json.dumps(origins))
    assert load_settings().collector_cors_origins == origins


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("STREAMLEARN_SCHEMA_REGISTRY_URL", "http://[::1"),
        ("STREAMLEARN_COLLECTOR_CORS_ORIGINS", '["https://[::1"]'),
    ],
)
def test_a_url_that_cannot_be_split_is_refused_by_name(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str
) -> None:
    """An unclosed IPv6 bracket made the validators fail with UnboundLocalError (a
    traceback) instead of naming the setting."""
    monkeypatch.setenv(variable, value)
    with pytest.raises(ConfigurationError, match=variable):
        load_settings()


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("STREAMLEARN_SERVE_API_TOKENS", '[""]'),
        ("STREAMLEARN_SERVE_API_TOKENS", '["tok1", "  "]'),
        ("STREAMLEARN_SERVE_API_TOKENS", '["has space"]'),
        ("STREAMLEARN_COLLECTOR_WRITE_KEYS", '{"": "app"}'),
        ("STREAMLEARN_COLLECTOR_WRITE_KEYS", '{"key1": ""}'),
    ],
)
def test_an_empty_token_or_write_key_is_refused(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str
) -> None:
    """Found by a new user: `[""]` was taken, and `Authorization: Bearer ` (empty) then
    passed: a configured API that was open."""
    monkeypatch.setenv(variable, value)
    with pytest.raises(ConfigurationError, match=variable):
        load_settings()


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("STREAMLEARN_SERVE_API_TOKENS", '["t"]'),
        ("STREAMLEARN_SERVE_API_TOKENS", '["a-long-enough-token", "letmein"]'),
        ("STREAMLEARN_COLLECTOR_WRITE_KEYS", '{"short-key-15ch": "shop"}'),
    ],
)
def test_a_guessable_token_or_write_key_is_refused(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str
) -> None:
    """Found by a new user: a one-character API token was taken (the signing key needs 16
    characters; a token opens the prediction API, a write key the collector)."""
    monkeypatch.setenv(variable, value)
    with pytest.raises(ConfigurationError, match=variable) as refused:
        load_settings()
    assert "at least 16 characters" in str(refused.value)
    assert "letmein" not in str(refused.value), "the token is not shown"


def test_a_token_or_write_key_of_16_characters_is_taken(monkeypatch: pytest.MonkeyPatch) -> None:
    assert (len("exactly-16-chars"), len("wk-exactly-16chr")) == (16, 16)
    monkeypatch.setenv("STREAMLEARN_SERVE_API_TOKENS", '["exactly-16-chars"]')
    monkeypatch.setenv("STREAMLEARN_COLLECTOR_WRITE_KEYS", '{"wk-exactly-16chr": "shop"}')
    settings = load_settings()
    assert [t.get_secret_value() for t in settings.serve_api_tokens] == ["exactly-16-chars"]


@pytest.mark.parametrize("key", [" ", "x", "short-key-15chr", " a-long-enough-signing-key"])
def test_a_guessable_or_padded_signing_key_is_refused(
    monkeypatch: pytest.MonkeyPatch, key: str
) -> None:
    """Found by a new user: `" "` and one character were taken as the HMAC key between
    `model.state` and the workers' unpickler."""
    monkeypatch.setenv("STREAMLEARN_MODEL_SIGNING_KEY", key)
    with pytest.raises(ConfigurationError, match="STREAMLEARN_MODEL_SIGNING_KEY") as refused:
        load_settings()
    assert key.strip() not in str(refused.value) or not key.strip(), "the key is not shown"


@pytest.mark.parametrize("key", ["x", "short-key-15chr", " a-long-enough-pseudonym-key"])
def test_a_guessable_or_padded_pseudonymisation_key_is_refused(
    monkeypatch: pytest.MonkeyPatch, key: str
) -> None:
    """Found by a new user: `x` was taken as the HMAC key of the IP pseudonyms in
    events.clean, where trying every short key turns each pseudonym back into its IP; the
    signing key, tokens and write keys have at least 16 characters."""
    monkeypatch.setenv("STREAMLEARN_PSEUDONYMISATION_KEY", key)
    with pytest.raises(ConfigurationError, match="STREAMLEARN_PSEUDONYMISATION_KEY") as refused:
        load_settings()
    assert "16 characters" in str(refused.value) or key != key.strip()
    assert key.strip() not in str(refused.value), "the key is not shown"
    monkeypatch.setenv("STREAMLEARN_PSEUDONYMISATION_KEY", "exactly-16-chars")
    assert load_settings().pseudonymisation_key is not None


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        (b"\xff\xfe", "not UTF-8"),
        (b": : :", "not YAML"),
        (b"- a\n- b\n", "not a mapping of settings"),
        (b"sevre_port: 8000\n", "unknown setting 'sevre_port' (did you mean 'serve_port'?)"),
        # The README's table names every setting by its variable: a file keyed so was
        # refused with no hint, since difflib finds no close match across the prefix.
        (
            b"STREAMLEARN_SERVE_PORT: 8000\n",
            "unknown setting 'STREAMLEARN_SERVE_PORT' (did you mean 'serve_port'? a file's"
            " keys are setting names, without the variables' STREAMLEARN_ prefix)",
        ),
        (
            b"STREAMLEARN_SEVRE_PORT: 8000\n",
            "unknown setting 'STREAMLEARN_SEVRE_PORT' (did you mean 'serve_port'? a file's"
            " keys are setting names, without the variables' STREAMLEARN_ prefix)",
        ),
    ],
)
def test_a_config_file_that_is_no_mapping_of_settings_is_refused_naming_the_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, content: bytes, problem: str
) -> None:
    """Found by a new user: non-UTF-8, malformed YAML and a list were tracebacks; a typo'd
    key was reported as an environment variable."""
    config = tmp_path / "settings.yaml"
    config.write_bytes(content)
    monkeypatch.setenv("STREAMLEARN_CONFIG_FILE", str(config))
    with pytest.raises(ConfigurationError) as refused:
        load_settings()
    assert f"STREAMLEARN_CONFIG_FILE={config}: {problem}" in str(refused.value)


def test_a_config_file_that_is_a_directory_is_said_to_be_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("STREAMLEARN_CONFIG_FILE", str(tmp_path))
    with pytest.raises(ConfigurationError, match="a directory, not a file"):
        load_settings()


@pytest.mark.parametrize("value", ["notaurl", "127.0.0.1:70000", "", "host:", ":9092", "a:1,b"])
def test_a_kafka_address_that_is_not_host_port_is_refused(
    monkeypatch: pytest.MonkeyPatch, value: str
) -> None:
    """Found by a new user: `notaurl`, port 70000 and an empty value were taken, and each
    command then waited 30 s for a broker it could never reach."""
    monkeypatch.setenv("STREAMLEARN_KAFKA_BOOTSTRAP", value)
    with pytest.raises(ConfigurationError, match=r"STREAMLEARN_KAFKA_BOOTSTRAP: .*host:port"):
        load_settings()


@pytest.mark.parametrize(
    "value", ["127.0.0.1:9092", "kafka-0.kafka:9092,kafka-1.kafka:9092", "[::1]:9092",
              "SASL_SSL://broker.example:9094"],
)  # fmt: skip
def test_kafka_addresses_as_clients_take_them(monkeypatch: pytest.MonkeyPatch, value: str) -> None:
    monkeypatch.setenv("STREAMLEARN_KAFKA_BOOTSTRAP", value)
    assert load_settings().kafka_bootstrap == value


@pytest.mark.parametrize(
    ("variable", "value", "said"),
    [
        ("STREAMLEARN_MODELS", "[]", "STREAMLEARN_MODELS"),
        ("STREAMLEARN_KAFKA_HEAP", "lots", "STREAMLEARN_KAFKA_HEAP"),
    ],
)
def test_settings_that_start_something_useless_or_broken_are_refused(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str, said: str
) -> None:
    """Found by a new user: `[]` started a worker serving nothing; `lots` reached the JVM
    as `-Xmxlots` (its error named no setting)."""
    monkeypatch.setenv(variable, value)
    with pytest.raises(ConfigurationError, match=said):
        load_settings()


def test_a_value_given_on_the_command_line_is_said_to_be(monkeypatch: pytest.MonkeyPatch) -> None:
    """`schemas register --registry-url http://127.0.0.1:70000` named the environment
    variable, and said the scheme was wrong when the port was."""
    with pytest.raises(ConfigurationError) as refused:
        load_settings(schema_registry_url="http://127.0.0.1:70000")
    said = str(refused.value)
    assert "schema_registry_url (given on the command line)" in said
    assert "a port of 1 to 65535" in said


def test_a_secret_file_that_is_a_directory_is_said_to_be_one(tmp_path: Path) -> None:
    from streamlearn.http_tls import check_private_file

    with pytest.raises(ConfigurationError, match="a directory, not a file"):
        check_private_file(tmp_path, "STREAMLEARN_COLLECTOR_WRITE_KEYS_FILE")


@pytest.mark.parametrize(
    ("variable", "value", "said"),
    [
        # A map's key is a write key: it was printed, upper-cased, as part of a variable
        # name that does not exist (STREAMLEARN_COLLECTOR_WRITE_KEYS_WK-LIVE-7C1E9F0A2B).
        (
            "STREAMLEARN_COLLECTOR_WRITE_KEYS",
            '{"wk-Live-7c1e9f0a2b": ""}',
            "STREAMLEARN_COLLECTOR_WRITE_KEYS (an entry): ",
        ),
        (
            "STREAMLEARN_COLLECTOR_WRITE_KEYS",
            '{"wk-Live-7c1e9f0a2b": 5}',
            "STREAMLEARN_COLLECTOR_WRITE_KEYS (an entry): ",
        ),
        (
            "STREAMLEARN_COLLECTOR_CORS_ORIGINS",
            '["https://a.example", "https://b.example/"]',
            "STREAMLEARN_COLLECTOR_CORS_ORIGINS (item 2): ",
        ),
    ],
)
def test_a_bad_entry_of_a_map_or_list_is_named_by_its_setting_never_by_its_key(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str, said: str
) -> None:
    monkeypatch.setenv(variable, value)
    with pytest.raises(ConfigurationError) as refused:
        load_settings()
    message = str(refused.value)
    assert said in message
    assert "7c1e9f0a2b" not in message.lower()


def test_config_show_masks_each_secret_key_of_a_map_apart() -> None:
    """Two write keys were shown as one entry: masked, the keys were one dict key."""
    keys = {SecretStr("wk-one-0123456789"): "shop-web", SecretStr("wk-two-9876543210"): "shop-ios"}
    shown = json.loads(shown_setting(keys))
    assert list(shown.values()) == ["shop-web", "shop-ios"]
    assert all("wk-" not in key for key in shown)


@pytest.mark.parametrize("pair", ["alice:", ":pw", "nocolon", " alice:pw", "alice:pw\n"])
def test_user_password_settings_must_be_a_user_and_a_password(
    pair: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Found by a new user: registry writers `alice:` let `curl -u alice:` (an empty
    password) write, `:pw` had no user, `nocolon` locked every writer out; a registry
    basic-auth value without a colon crashed every client with a traceback."""
    monkeypatch.setenv("STREAMLEARN_REGISTRY_WRITERS", json.dumps([pair]))
    with pytest.raises(ConfigurationError, match="STREAMLEARN_REGISTRY_WRITERS") as refused:
        load_settings()
    assert "user:password" in str(refused.value)
    assert "pw" not in str(refused.value)  # never the secret
    monkeypatch.delenv("STREAMLEARN_REGISTRY_WRITERS")
    monkeypatch.setenv("STREAMLEARN_SCHEMA_REGISTRY_BASIC_AUTH", pair)
    with pytest.raises(ConfigurationError, match="STREAMLEARN_SCHEMA_REGISTRY_BASIC_AUTH"):
        load_settings()
    monkeypatch.setenv("STREAMLEARN_SCHEMA_REGISTRY_BASIC_AUTH", "alice:a:b")  # ':' in a password
    assert load_settings().schema_registry_basic_auth is not None


@pytest.mark.parametrize("prefix", ["bad prefix.", "tenant/a.", "caf\u00e9.", "x" * 101])
def test_a_topic_prefix_kafka_cannot_name_is_refused_at_start(
    prefix: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Found by a new user: an invalid prefix passed, and `topics diff` then printed one
    refusal per topic without naming the setting."""
    monkeypatch.setenv("STREAMLEARN_TOPIC_PREFIX", prefix)
    with pytest.raises(ConfigurationError, match="STREAMLEARN_TOPIC_PREFIX"):
        load_settings()


def test_a_dotenv_file_shared_with_other_tools_is_read_for_our_settings_only(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """Found by a new user: a `.env` holding COMPOSE_PROJECT_NAME stopped every command
    ("STREAMLEARN_COMPOSE_PROJECT_NAME: Extra inputs are not permitted"), and a typo in it
    was fatal under a doubled name, while the same typo in the environment is a warning."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / ".env").write_text(
        "COMPOSE_PROJECT_NAME=shop\nSTREAMLEARN_SERVE_PORT=8123\nSTREAMLEARN_SERVE_PORTT=1\n"
    )
    with caplog.at_level("WARNING"):
        settings = load_settings()
    assert settings.serve_port == 8123
    assert any(
        "STREAMLEARN_SERVE_PORTT (in .env) is not a setting (did you mean STREAMLEARN_SERVE_PORT?)"
        in r.getMessage()
        for r in caplog.records
    ), caplog.text


def test_debug_is_streamlearn_s_own_loggers_not_every_library_s() -> None:
    """Found by a new user: STREAMLEARN_LOG_LEVEL=DEBUG also turned on aiokafka's, httpcore's
    and asyncio's debug lines (Kafka protocol dumps), though the setting is documented as
    the level of streamlearn's own loggers."""
    import os
    import subprocess
    import sys

    probe = (
        "import logging; from streamlearn.cli_common import command_settings; "
        "command_settings(); "
        "print(*(logging.getLogger(n).isEnabledFor(logging.DEBUG) "
        "for n in ('streamlearn.serving', 'aiokafka.conn', 'httpcore', 'asyncio')))"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=60, check=True,
        env={**os.environ, "STREAMLEARN_LOG_LEVEL": "DEBUG"},
    )  # fmt: skip
    assert done.stdout.split() == ["True", "False", "False", "False"], done.stdout


def test_a_bad_value_in_the_settings_file_is_named_as_the_file_s_key(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Found by a new user: `serve_port: eighty` in STREAMLEARN_CONFIG_FILE was reported as
    STREAMLEARN_SERVE_PORT, a variable nobody had set."""
    config = tmp_path / "settings.yaml"
    config.write_text("serve_port: eighty\n")
    monkeypatch.setenv("STREAMLEARN_CONFIG_FILE", str(config))
    monkeypatch.delenv("STREAMLEARN_SERVE_PORT", raising=False)
    with pytest.raises(ConfigurationError, match=f"serve_port \\(in {config}\\)"):
        load_settings()
    monkeypatch.setenv("STREAMLEARN_SERVE_PORT", "eighty")  # the environment's, named so
    with pytest.raises(ConfigurationError, match="STREAMLEARN_SERVE_PORT: "):
        load_settings()


@pytest.mark.parametrize(
    ("setting_type", "values"),
    [
        ("UserPassword", ("alice:", ":pw", "nocolon", " alice:pw", "alice:pw\n", "al ice:pw",
                          "alice:pa:", "alice:a b", "alice:pw", "a:b:c")),
        ("Credential", ("", "x", "short-key-15chr", "exactly-16-chars", "has a space in it!",
                        "a-long-enough-token\n", "a-long-enough\ttoken")),
    ],
)  # fmt: skip
def test_the_chart_s_check_of_a_secret_is_the_validator_s(
    setting_type: str, values: tuple[str, ...]
) -> None:
    """The values schema's pattern refuses what the setting refuses, and no more (a
    password ending in ':' is a password; a token of 16 characters is a token)."""
    import re
    import typing

    from pydantic.functional_validators import AfterValidator

    from streamlearn import settings_values
    from streamlearn.settings_values import JsonPattern

    metadata = typing.get_args(getattr(settings_values, setting_type))[1:]
    [check] = [m for m in metadata if isinstance(m, JsonPattern)]
    [validator] = [m for m in metadata if isinstance(m, AfterValidator)]
    assert check.refused
    for value in values:
        try:
            validator.func(SecretStr(value))  # type: ignore[call-arg]
            taken = True
        except ValueError:
            taken = False
        long_enough = check.min_length is None or len(value) >= check.min_length
        assert taken == (long_enough and re.search(check.pattern, value) is None), value


@pytest.mark.parametrize(
    ("variable", "value", "named"),
    [
        ("STREAMLEARN_MODELS", '["ctr", "nope"]', "models: unknown model spec 'nope'"),
        ("STREAMLEARN_MODEL_WARM_START", '{"ctr": "/tmp/nope/ctr.snapshot"}', "model_warm_start"),
        ("STREAMLEARN_MODEL_WARM_START", '{"ctr": "ctr"}', "model_warm_start"),
        ("STREAMLEARN_MODEL_WARM_START", '{"ctr": ""}', "model_warm_start"),
        ("STREAMLEARN_MODEL_WARM_START", '{"ctr": "ctr@"}', "model_warm_start"),
        ("STREAMLEARN_MODEL_PROMOTION", '{"ctrr": {"margin": 0.0}}', "'ctrr' is not a configured"),
    ],
)
def test_config_show_refuses_the_model_settings_every_part_refuses(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
    variable: str, value: str, named: str,
) -> None:  # fmt: skip
    """Found by a new user: `config show` exited 0 for each of these, which every part
    refuses at its start (the specs are built from them there, not when the settings load);
    an empty warm start was shown as set and taken as none, and `ctr@` as a name."""
    monkeypatch.setenv(variable, value)
    monkeypatch.setattr("streamlearn.orphan_watch.stop_when_orphaned", lambda: None)
    with pytest.raises(SystemExit) as exited:
        cli.main(["config", "show"])
    assert exited.value.code == 1
    error = capsys.readouterr().err
    assert error.startswith("streamlearn: error: "), error
    assert named in error
    assert len(error.strip().splitlines()) == 1


def test_a_promotion_margin_is_a_number_not_a_boolean(monkeypatch: pytest.MonkeyPatch) -> None:
    """`{"margin": true}` was taken as a margin of 1.0 (found by a new user)."""
    monkeypatch.setenv("STREAMLEARN_MODEL_PROMOTION", '{"ctr": {"margin": true}}')
    with pytest.raises(ConfigurationError, match="margin"):
        load_settings()
    monkeypatch.setenv("STREAMLEARN_MODEL_PROMOTION", '{"ctr": {"margin": 0, "window": 200}}')
    assert load_settings().model_promotion["ctr"].margin == 0.0


def test_a_withheld_setting_is_read_from_no_source(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What `up` gives a part that does not use a secret: neither the environment, `.env`
    nor the config file reaches it (all three would have)."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / ".env").write_text('STREAMLEARN_SERVE_API_TOKENS=["from-dotenv-aaaaaaaa"]\n')
    config = tmp_path / "config.yaml"
    config.write_text("collector_write_keys: {wk-from-config-bbbbbbbb: shop}\nsession_gap_s: 60\n")
    monkeypatch.setenv("STREAMLEARN_CONFIG_FILE", str(config))
    monkeypatch.setenv("STREAMLEARN_PSEUDONYMISATION_KEY", "from-env-cccccccccccc")
    given = Settings()
    assert given.serve_api_tokens
    assert given.collector_write_keys
    assert given.pseudonymisation_key
    monkeypatch.setenv(WITHHELD_ENV, "serve_api_tokens,collector_write_keys,pseudonymisation_key")
    withheld = Settings()
    assert withheld.serve_api_tokens == []
    assert withheld.collector_write_keys == {}
    assert withheld.pseudonymisation_key is None
    assert withheld.session_gap_s == 60  # the rest of the file is read as before
    assert WITHHELD_ENV not in " ".join(unknown_variables({WITHHELD_ENV: "x"}))


@pytest.mark.parametrize("where", ["config file", ".env"])
def test_a_settings_file_holding_secrets_that_others_may_read_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, where: str
) -> None:
    """Found by a new user: a TLS key file, a certificate holding its key and the write-keys
    file are refused at 0644, but the config file and `.env`, the documented places for
    SASL passwords, the signing key and tokens, were taken at 0644 without a word."""
    monkeypatch.chdir(tmp_path)
    if where == ".env":
        path = tmp_path / ".env"
        path.write_text(
            "STREAMLEARN_KAFKA_SASL_PASSWORD=s3cret-value\nSTREAMLEARN_SERVE_PORT=8000\n"
        )
    else:
        path = tmp_path / "settings.yaml"
        path.write_text("kafka_sasl_password: s3cret-value\nserve_port: 8000\n")
        monkeypatch.setenv("STREAMLEARN_CONFIG_FILE", str(path))
    path.chmod(0o644)
    with pytest.raises(ConfigurationError) as refused:
        load_settings()
    assert str(refused.value) == (
        f"{path} holds secret settings (kafka_sasl_password) and others may read or change "
        f"it (mode 0644): make it 0600 (chmod 600 {path})"
    )
    assert "s3cret" not in str(refused.value)
    path.chmod(0o640)  # shared with the process's group: fine, as for key files
    assert load_settings().kafka_sasl_password is not None
    path.write_text(
        path.read_text()
        .replace("s3cret-value", "")
        .replace("kafka_sasl_password:", "log_level: INFO #")
        .replace("STREAMLEARN_KAFKA_SASL_PASSWORD=", "#")
    )
    path.chmod(0o644)  # no secret in it: anyone may read it
    load_settings()
