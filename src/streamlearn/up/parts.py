"""The parts `up` runs, as child specs: one process per agent, the archive, the collector,
the prediction worker, the dashboard and the registry; and the ports they need."""

from __future__ import annotations

import socket
from collections.abc import Mapping

from streamlearn.agents import AGENT_NAMES
from streamlearn.exceptions import StreamlearnError
from streamlearn.ports import free_port
from streamlearn.secret_settings import SECRET_SETTING_NAMES, signing_environment
from streamlearn.settings import ENV_PREFIX, WITHHELD_ENV, Settings
from streamlearn.settings_values import port_bounds
from streamlearn.up.children import ChildSpec
from streamlearn.up.doors import Doors
from streamlearn.up.kafka_users import KafkaUsers
from streamlearn.up.options import UpOptions


def check_ports_free(options: UpOptions) -> None:
    """Fail at once, naming the option, when a port is taken (another `up` running?): a
    part that cannot listen would otherwise crash and restart until its readiness wait
    gives up a minute later."""
    ports = {
        "--collector-port": options.collector_port,
        "--serve-port": options.serve_port,
        "--dashboard-port": options.dashboard_port,
    }
    if options.start_registry:
        ports["--registry-port"] = options.registry_port
    # Two parts on one port: the second crashed and restarted until its readiness wait
    # gave up minutes later. (The broker's port is its own check: a running broker of the
    # data directory holds it.)
    ours = {"--port": options.kafka_port} if options.embedded_kafka else {}
    seen: dict[int, str] = {}
    for option, port in {**ours, **ports}.items():
        if port and port in seen:
            raise StreamlearnError(
                f"{seen[port]} and {option} are both {port}: each part needs a port of its own"
            )
        seen[port] = option
    for option, port in ports.items():
        with socket.socket() as probe:
            # As the servers do: a port in TIME_WAIT from a previous run is free to them.
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                probe.bind(("127.0.0.1", port))
            except OSError as exc:
                raise StreamlearnError(
                    f"port {port} is taken ({exc.strerror}); is another `streamlearn up` "
                    f"running? Stop it or choose another {option}"
                ) from exc


SIGNING_SECRETS = frozenset({"model_signing_key", "model_previous_signing_key"})
REGISTRY_CLIENT = frozenset({"schema_registry_basic_auth"})
"""What a part that registers its output schemas logs in to the registry with."""
PART_SECRETS: Mapping[str, frozenset[str]] = {
    "serve": frozenset({"serve_api_tokens"}) | REGISTRY_CLIENT | SIGNING_SECRETS,
    "collector": frozenset({"collector_write_keys"}) | REGISTRY_CLIENT,
    "registry": frozenset({"registry_writers"}),
    "learner": REGISTRY_CLIENT | SIGNING_SECRETS,
    "preprocess": frozenset({"pseudonymisation_key"}) | REGISTRY_CLIENT,
    "dashboard": frozenset({"dashboard_api_tokens", "dashboard_users"}) | REGISTRY_CLIENT,
}
"""The secret settings each part uses beyond :data:`REGISTRY_CLIENT`, which every other part
gets (each reads schemas, and a registry of `up --schema-registry-url` may ask a login
for reads too), as the Helm chart gives them; every part gets its own Kafka login
(:class:`KafkaUsers`)."""
KAFKA_LOGIN = frozenset({"kafka_sasl_password", "kafka_ssl_key_password"})
OBJECT_STORE_CREDENTIALS = frozenset(
    {"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN"}
)
"""The object store's credentials (botocore's variables), which only the archive uses: the
other parts do not inherit them from `up`'s environment."""


def secrets_of(part: str, settings: Settings) -> tuple[dict[str, str], frozenset[str]]:
    """What ``part`` is given beyond the environment's other variables: the signing
    settings ``up`` resolved (to the parts that sign or verify), and the variables of
    the secrets it does not use, which it neither inherits nor reads from any source
    (:data:`~streamlearn.settings.WITHHELD_ENV`)."""
    uses = PART_SECRETS.get(part, REGISTRY_CLIENT)
    withheld = sorted(SECRET_SETTING_NAMES - uses - KAFKA_LOGIN)
    env = {WITHHELD_ENV: ",".join(withheld)}
    if uses & SIGNING_SECRETS:
        env.update(signing_environment(settings))
    unset = frozenset(f"{ENV_PREFIX}{name.upper()}" for name in withheld)
    if part != "archive":
        unset |= OBJECT_STORE_CREDENTIALS
    return env, unset


def part_specs(
    settings: Settings, options: UpOptions, doors: Doors, users: KafkaUsers
) -> list[ChildSpec]:
    """Every part but the registry, each connecting to Kafka as ``users`` says."""
    env = {
        "STREAMLEARN_KAFKA_BOOTSTRAP": settings.kafka_bootstrap,
        "STREAMLEARN_SCHEMA_REGISTRY_URL": settings.schema_registry_url,
        "STREAMLEARN_TOPIC_PREFIX": settings.topic_prefix,
        "STREAMLEARN_DATA_DIR": str(settings.data_dir),
    }
    # Picked before any part listens: none may be a port meant for another server.
    named = {options.kafka_port, options.registry_port, options.collector_port,
             options.serve_port, options.dashboard_port}  # fmt: skip
    specs = []
    for agent in AGENT_NAMES:
        port = free_port(avoid=named, within=port_bounds(settings.port_range))
        secret_env, unset = secrets_of(agent, settings)
        specs.append(
            ChildSpec(
                agent,
                args=(
                    *("agents", "run", "--only", agent, "--group", f"streamlearn-{agent}"),
                    *("--metrics-port", str(port)),
                ),
                env={**env, **secret_env, **users.part_environment(agent)},
                unset=unset,
                # Ready once it has joined its group and recovered its stores.
                ready_url=f"http://127.0.0.1:{port}/readyz",
                metrics_url=f"http://127.0.0.1:{port}/metrics",
            )
        )
    port = free_port(avoid=named, within=port_bounds(settings.port_range))
    secret_env, unset = secrets_of("archive", settings)
    specs.append(
        ChildSpec(
            "archive",
            args=("archive", "run", "--metrics-port", str(port)),
            env={**env, **secret_env, **users.part_environment("archive")},
            unset=unset,
            # Ready once it has joined its group (files go under <data dir>/archive).
            ready_url=f"http://127.0.0.1:{port}/readyz",
            metrics_url=f"http://127.0.0.1:{port}/metrics",
        )
    )
    scrape = [f"{spec.name}={spec.metrics_url}" for spec in specs if spec.metrics_url]
    scrape += [
        f"collector={doors.url(options.collector_port, '/metrics')}",
        f"serve={doors.url(options.serve_port, '/metrics')}",
    ]
    for name, args, port in (
        ("collector", ("collector", "serve"), options.collector_port),
        ("serve", ("serve",), options.serve_port),
        ("dashboard", ("dashboard", *(f"--scrape={url}" for url in scrape)),
         options.dashboard_port),
    ):  # fmt: skip
        secret_env, unset = secrets_of(name, settings)
        specs.append(
            ChildSpec(
                name,
                (*args, "--port", str(port)),
                {**env, **secret_env, **users.part_environment(name)},
                unset=unset,
                ready_url=doors.url(port, "/healthz"),
                metrics_url=doors.url(port, "/metrics"),
            )
        )
    return specs


def registry_spec(settings: Settings, port: int, doors: Doors, users: KafkaUsers) -> ChildSpec:
    secret_env, unset = secrets_of("registry", settings)
    return ChildSpec(
        "registry",
        ("registry", "serve", "--port", str(port)),
        {
            "STREAMLEARN_KAFKA_BOOTSTRAP": settings.kafka_bootstrap,
            "STREAMLEARN_TOPIC_PREFIX": settings.topic_prefix,
            **secret_env,
            **users.part_environment("registry"),
        },
        unset=unset,
        ready_url=doors.url(port, "/healthz"),
    )
