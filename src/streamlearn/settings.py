"""One typed, frozen settings object for every streamlearn process.

Values come, highest priority first, from keyword arguments, ``STREAMLEARN_*`` environment
variables, a ``.env`` file in the working directory, and an optional YAML file named by
``STREAMLEARN_CONFIG_FILE``. Secrets are :class:`~pydantic.SecretStr`, so they print as
``**********`` in reprs, logs and ``streamlearn config show``. Commands read them with
:func:`~streamlearn.settings_loading.load_settings` (readable errors, unknown variables
named); the values' own checks are in :mod:`streamlearn.settings_values`.
"""

from __future__ import annotations

import os
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, Field, SecretStr
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    YamlConfigSettingsSource,
)

from streamlearn.settings_values import (
    Credential,
    HttpUrl,
    KafkaAddresses,
    Origin,
    PortRange,
    PromotionGate,
    PseudonymisationKey,
    SigningKey,
    UserPassword,
    app_id,
)

ENV_PREFIX = "STREAMLEARN_"
LONGEST_LABEL_WAIT_S = 30 * 86400
"""The longest label horizon and lateness: label-join holds every prediction that long
(1e300 s passed and overflowed a timestamp)."""
CONFIG_FILE_ENV = "STREAMLEARN_CONFIG_FILE"
WITHHELD_ENV = "STREAMLEARN_WITHHELD_SETTINGS"
"""Settings (names, comma-separated) this process reads from no source: what ``up`` gives a
part for each secret it does not use, so that neither the environment it inherits nor a
``.env`` or config file hands it one (:mod:`streamlearn.up.parts`)."""


def _default_cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "streamlearn"


def _default_data_dir() -> Path:
    base = os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share"
    return Path(base) / "streamlearn"


SecurityProtocol = Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"]
# The mechanisms both Kafka clients log in with from a user name and password. OAUTHBEARER
# and GSSAPI were taken too, and every part failed at its first connection: aiokafka wants a
# token provider for one and the gssapi library for the other, and streamlearn has neither.
SaslMechanism = Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"]


class Settings(BaseSettings):
    """Settings shared by every streamlearn command and process."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX,
        env_file=".env",
        env_file_encoding="utf-8",
        extra="forbid",
        frozen=True,
        use_attribute_docstrings=True,
        # No setting means infinity: `inf` passed `gt=0` and crashed label-join (a horizon
        # in milliseconds is an integer).
        allow_inf_nan=False,
    )

    kafka_bootstrap: KafkaAddresses = "127.0.0.1:9092"
    """Kafka bootstrap servers (comma separated host:port)."""

    kafka_security_protocol: SecurityProtocol = "PLAINTEXT"
    """Kafka security protocol, passed to both Kafka clients."""

    kafka_sasl_mechanism: SaslMechanism | None = None
    """SASL mechanism when the security protocol is SASL_* (user name and password)."""

    kafka_sasl_username: str | None = None
    """SASL user name."""

    kafka_sasl_password: SecretStr | None = None
    """SASL password (secret: never printed)."""

    kafka_ssl_cafile: Path | None = None
    """CA bundle to verify the brokers' certificates."""

    kafka_ssl_certfile: Path | None = None
    """Client certificate for mutual TLS."""

    kafka_ssl_keyfile: Path | None = None
    """Private key of the client certificate."""

    kafka_ssl_key_password: SecretStr | None = None
    """Password of the client private key (secret: never printed)."""

    kafka_producer_stall_s: float = Field(default=60.0, gt=0, le=3600)
    """A collector's or prediction worker's producer that gets no word from a broker this
    long while a new client reaches them is stuck: its /healthz fails, to be restarted."""

    schema_registry_url: HttpUrl = "http://127.0.0.1:8081"
    """URL of the Confluent-compatible schema registry (http:// or https://)."""

    schema_registry_basic_auth: UserPassword | None = None
    """user:password the clients send to the registry (basic.auth.user.info; secret)."""

    registry_writers: list[UserPassword] = Field(default_factory=list)
    """user:password pairs `registry serve` lets register, delete and configure; none: open."""

    topology_file: Path | None = None
    """Topics every part uses and `topics apply` creates; unset: the shipped topics.yaml."""

    topic_prefix: Annotated[str, Field(pattern=r"^[A-Za-z0-9._-]*$", max_length=100)] = ""
    """Namespace: prefix of every topic, consumer group and changelog (tenants, replays, tests);
    letters, digits, '.', '_' and '-' (what Kafka names hold)."""

    topic_replication_factor: int | None = Field(default=None, ge=1)
    """Overrides the topology's replication factor (e.g. 3 on a production cluster)."""

    cache_dir: Path = Field(default_factory=_default_cache_dir)
    """Where downloaded artefacts (the embedded broker's jars) are cached."""

    data_dir: Path = Field(default_factory=_default_data_dir)
    """Where the embedded broker keeps its log segments, config and pid file."""

    archive_root: str | None = None
    """Where `archive run` writes and `replay --source archive` reads: directory or s3://b/p."""

    archive_retention_hours: float | None = Field(default=None, gt=0)
    """`archive run` deletes files whose hour ended longer ago, but each partition's newest;
    unset: kept for good (an S3 bucket's lifecycle rule can expire them instead)."""

    maven_repository: str = "https://repo1.maven.org/maven2"
    """Maven repository the embedded broker's jars are fetched from (a mirror works)."""

    port_range: PortRange | None = None
    """Ports the servers streamlearn picks itself come from, as LOW-HIGH (e.g. 22700-22799):
    the embedded broker's controller, and the agents' and the archive's metrics ports under
    `up`; unset, any free port from 10000 to below the kernel's ephemeral range."""

    kafka_heap: Annotated[str, Field(pattern=r"^[1-9][0-9]*[kKmMgG]?$")] = "512m"
    """Maximum Java heap of the embedded broker (-Xmx)."""

    kafka_start_timeout_s: float = Field(default=60.0, gt=0)
    """How long `streamlearn kafka start` waits for the broker to answer metadata requests."""

    dedup_window_s: float = Field(default=3600.0, gt=0)
    """How long preprocess remembers an event id to drop its duplicates."""

    bot_rate_window_s: float = Field(default=60.0, gt=0)
    """Window of the request-rate bot rules (on the time events were received)."""

    bot_max_events_per_user: int = Field(default=120, ge=1)
    """More events than this from one user within the rate window marks them as a bot."""

    bot_max_events_per_ip: int = Field(default=600, ge=1)
    """More events than this from one IP within the rate window marks them as a bot."""

    bot_min_interval_ms: float = Field(default=50.0, ge=0)
    """Events of one user closer than this (received time) count towards an inhuman burst."""

    bot_burst_length: int = Field(default=5, ge=2)
    """This many consecutive too-close events of one user mark them as a bot."""

    max_clock_skew_s: float = Field(default=86400.0, gt=0)
    """A client time further than this behind the received time is replaced by the received
    time (one more than 60 s ahead of it always is: an event cannot follow its receipt).
    An event whose received time is more than 60 s (or this, if smaller) after Kafka appended
    it is rejected: the producing host's clock is ahead, and would move sessions' time."""

    ip_policy: Literal["drop", "pseudonymise"] = "drop"
    """What preprocess does with full IPs: drop them, or keep a keyed hash (needs the key)."""

    pseudonymisation_key: PseudonymisationKey | None = None
    """HMAC key of IP pseudonyms, at least 16 characters (secret: never printed)."""

    geoip_database: Path | None = None
    """MaxMind DB file (GeoLite2/GeoIP2 Country or City); when set, events get a country."""

    session_gap_s: float = Field(default=1800.0, gt=0)
    """Inactivity gap that ends a session (event time)."""

    session_cut_s: float = Field(default=86400.0, ge=1)
    """Sessions never span a multiple of this many seconds of event time since the epoch
    (86400: UTC midnight, where web analytics cut them), so a user who never pauses still
    has sessions that close."""

    session_allowed_lateness_s: float = Field(default=300.0, ge=0)
    """How far behind the newest event time an event may arrive and be sessionised normally."""

    session_late_policy: Literal["correction", "drop"] = "correction"
    """Events later than the allowed lateness: re-emit their session corrected, or drop them."""

    session_idle_s: float = Field(default=10.0, gt=0)
    """A live partition quiet this long lets event time move with the wall clock (agents)."""

    monitor_window_records: int = Field(default=200, ge=20)
    """Records in one monitor window (per partition and monitored stream; tied to offsets)."""

    monitor_reference_records: int = Field(default=1000, ge=20)
    """Records of a stream's reference (its first ones; bin edges fixed from them once)."""

    monitor_reference_span_s: float = Field(default=300.0, ge=0)
    """Event time a stream's reference spans at least (besides its records; feature
    values a uniform sample): a burst or a start-up transient cannot make it alone."""

    monitor_false_alarm_rate: float = Field(default=1e-3, gt=0, lt=0.5)
    """Chance that one window of undrifted data crosses a drift threshold (sets them)."""

    monitor_consecutive_windows: int = Field(default=4, ge=1)
    """Windows in a row over a threshold before the monitor raises an alert."""

    monitor_calibration_consecutive_windows: int = Field(default=2, ge=1)
    """Windows in a row over a calibration threshold before an alert. Fewer than for
    feature histograms: labels are independent given their scores, so the binomial
    thresholds hold window by window, while a page view's features repeat in each slot."""

    monitor_cooldown_s: float = Field(default=300.0, ge=0)
    """Event time during which a repeated alert for one condition is held back."""

    monitor_bins: int = Field(default=10, ge=2)
    """Bins of a numeric feature's histogram (quantiles of its reference)."""

    monitor_top_k: int = Field(default=20, ge=1)
    """Categories of a categorical feature kept by name; the rest count as other."""

    monitor_bucket_s: float = Field(default=10.0, gt=0)
    """Event-time bucket of the share of events preprocess filtered (bots, duplicates)."""

    consumer_session_timeout_s: float = Field(default=30.0, ge=6)
    """How long a silent agent worker keeps its partitions before the group moves them."""

    agent_fetch_hold_ms: int | None = Field(default=None, ge=0, le=60_000)
    """How long the broker may hold an agent worker's fetch while less than 1 MiB is there
    (ms): unset, what the worker's agents let (100 for the pipeline's agents, 500 for the
    monitor alone); 0, no hold (each record handled as it comes, at more CPU per record
    when caught up); more, larger batches and less CPU for that much more latency."""

    agent_decoding_process: bool = True
    """Whether preprocess, sessionise and the learner decode long batches in a second
    process when they may use more than one core (false: in their own process)."""

    collector_max_body_bytes: int = Field(default=1_048_576, ge=1024)
    """Largest request body the collector accepts (larger: 413)."""

    collector_max_batch: int = Field(default=500, ge=1)
    """Most events in one collector request (more: 413)."""

    collector_unknown_fields: Literal["reject", "ignore"] = "reject"
    """What the collector does with fields its schemas do not know."""

    collector_delivery_timeout_s: float = Field(default=10.0, gt=0)
    """How long the collector waits for Kafka to confirm a batch before answering 503."""

    collector_cors_origins: list[Origin] = Field(default_factory=list)
    """Origins whose pages may post events (CORS); a browser on any other origin gets 403."""

    collector_trust_forwarded_for: bool = False
    """Take the client IP from X-Forwarded-For's last entry (only behind a proxy you run)."""

    collector_rate_limit_per_ip: float | None = Field(default=None, gt=0)
    """Posts a second one client IP may make (bursts of collector_rate_burst); more: 429."""

    collector_rate_burst: int = Field(default=20, ge=1)
    """Posts one client IP may make at once before collector_rate_limit_per_ip applies."""

    collector_write_keys: dict[Credential, Annotated[str, AfterValidator(app_id)]] = Field(
        default_factory=dict
    )
    """Write keys (JSON {"key": "app id"}) the collector wants on each post; none: open (secret)."""

    collector_write_keys_file: Path | None = None
    """JSON file of more write keys ({"key": "app id"}; not readable by others)."""

    http_tls_certfile: Path | None = None
    """Certificate chain (PEM) every HTTP server presents; set: the servers speak HTTPS only."""

    http_tls_keyfile: Path | None = None
    """Private key (PEM) of http_tls_certfile, not readable by others; unset: in the certfile."""

    http_tls_cafile: Path | None = None
    """CA bundle streamlearn's own HTTP clients trust (registry, probes); unset: the system's."""

    model_signing_key: SigningKey | None = None
    """Shared HMAC key that signs and verifies model snapshots, at least 16 characters
    (secret: never printed)."""

    model_signing_key_id: str | None = None
    """Name of the signing key, stored with each snapshot (for key rotation)."""

    model_previous_signing_key: SecretStr | None = None
    """The key before the last rotation: still verifies until its grace ends (secret)."""

    model_previous_signing_key_id: str | None = None
    """Name of the previous key (the signing_key_id its snapshots carry)."""

    model_previous_signing_key_until: datetime | None = None
    """End of the previous key's grace (ISO 8601); after it its snapshots are refused."""

    models: list[str] = Field(default_factory=lambda: ["ctr"], min_length=1)
    """Model specs (streamlearn.models.SPECS) the learner trains and workers serve."""

    label_horizon_s: float | None = Field(default=None, gt=0, le=LONGEST_LABEL_WAIT_S)
    """Overrides every model's label horizon (seconds, at most 30 days); learner and workers
    must agree."""

    label_allowed_lateness_s: float = Field(default=60.0, ge=0, le=LONGEST_LABEL_WAIT_S)
    """How long after a label's horizon late feedback is still waited for."""

    snapshot_every_examples: int | None = Field(default=None, ge=1)
    """Overrides every model's snapshot cadence in learned examples."""

    snapshot_every_s: float | None = Field(default=None, gt=0)
    """Overrides every model's snapshot cadence in seconds."""

    model_promotion: dict[str, PromotionGate] = Field(default_factory=dict)
    """Model → its promotion gate (JSON, e.g. `{"ctr": {"margin": 0.0, "window": 500,
    "judge": "candidate", "after_examples": 3000}}`): a version serves only once its
    held-out log loss is at most the promoted version's plus `margin`, judged once the
    promoted version has learned `after_examples` (docs/learning.md, Promotion gate); the
    gate's state is in each snapshot, so a restarted learner decides as one that ran through;
    with `"judge": "candidate"`, `auc_margin` also asks its held-out AUC to be at least the
    promoted version's less that (negative: better by that); none: every version serves."""

    model_warm_start: dict[str, str] = Field(default_factory=dict)
    """Model → the model.state name (e.g. `ctr@history`, from `replay model ctr --shadow
    history`; `ctr@<shadow>`, a shadow of letters, digits, `.`, `_` and `-`) whose newest
    verified snapshot a learner with no snapshot of the model starts from (JSON, e.g.
    `{"ctr": "ctr@history"}`)."""

    serve_port: int = Field(default=8000, ge=1, le=65535)
    """HTTP port of a prediction worker (`streamlearn serve`)."""

    serve_max_body_bytes: int = Field(default=1_048_576, ge=1024)
    """Largest predict request body a worker accepts (larger: 413)."""

    serve_max_instances: int = Field(default=256, ge=1)
    """Most instances in one predict request (more: 422)."""

    serve_telemetry_buffer: int = Field(default=10_000, ge=1)
    """PredictionServed records a worker buffers for Kafka; beyond it they are dropped (counted)."""

    serve_max_model_age_s: float | None = Field(default=None, gt=0)
    """A model older than this serves the fallback (degraded); unset: each spec's own limit."""

    serve_startup_wait_s: float = Field(default=30.0, ge=0)
    """How long a starting worker waits to have read model.state and experiments to their end
    before it opens its port; then it opens anyway, answering with the fallback until then."""

    serve_api_tokens: list[Credential] = Field(default_factory=list)
    """Bearer tokens the prediction API (/v1/...) accepts; none: open (secrets)."""

    serve_worker_version: str | None = None
    """Worker version stamped on every prediction; unset: the streamlearn version."""

    dashboard_api_tokens: list[Credential] = Field(default_factory=list)
    """Bearer tokens the dashboard's page and API accept; /healthz, /readyz and /metrics stay
    open. With neither these nor dashboard_users: open (secrets)."""

    dashboard_users: list[UserPassword] = Field(default_factory=list)
    """user:password pairs the dashboard's page and API accept as HTTP basic auth (the
    browser asks for them); see dashboard_api_tokens (secrets)."""

    dashboard_max_event_clients: int = Field(default=100, ge=1)
    """Most pages connected to the dashboard's /api/events at once; more: 503, counted."""

    dashboard_event_write_timeout_s: float = Field(default=30.0, gt=0)
    """How long one event may wait for a page to take it; a page that reads nothing that
    long is disconnected (its place freed, counted)."""

    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    """Log level of streamlearn's own loggers."""

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # A `.env` file is shared with other tools (``COMPOSE_PROJECT_NAME``), whose
        # variables pydantic-settings would hand on as unknown settings and stop every
        # command; ``STREAMLEARN_*`` names no setting has are warned of by load_settings.
        sources: list[PydanticBaseSettingsSource] = [
            env_settings, _Only(dotenv_settings, frozenset(cls.model_fields)),
        ]  # fmt: skip
        config_file = os.environ.get(CONFIG_FILE_ENV)
        if config_file:
            sources.append(YamlConfigSettingsSource(settings_cls, yaml_file=config_file))
        sources.append(file_secret_settings)
        withheld = {n.strip() for n in os.environ.get(WITHHELD_ENV, "").split(",")} - {""}
        if withheld:
            readable = frozenset(cls.model_fields) - withheld
            sources = [_Only(source, readable) for source in sources]
        return (init_settings, *sources)


class _Only(PydanticBaseSettingsSource):
    """A source's values for the ``readable`` settings only (see ``settings_customise_sources``)."""

    def __init__(self, source: PydanticBaseSettingsSource, readable: frozenset[str]) -> None:
        super().__init__(source.settings_cls)
        self.source = source
        self.readable = readable

    def get_field_value(self, field: Any, field_name: str) -> tuple[Any, str, bool]:
        return self.source.get_field_value(field, field_name)

    def __call__(self) -> dict[str, Any]:
        return {k: v for k, v in self.source().items() if k in self.readable}


class ExplicitSettings(Settings):
    """Settings of the values given and the defaults alone: no environment variable, `.env`
    file or config file reaches them. For worlds a user's shell must not change, such as
    the learning lab's, whose seed promises the same figures wherever it runs (a
    ``STREAMLEARN_SNAPSHOT_EVERY_S`` in the shell changed them)."""

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (init_settings,)
