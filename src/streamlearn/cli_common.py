"""What every ``streamlearn`` command shares: option types, settings loading, failing."""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Annotated, Any, NoReturn

import typer

from streamlearn.kafka_clients import quiet_client_logs
from streamlearn.kafka_local import PinnedJar
from streamlearn.log_repeats import quiet_repeats
from streamlearn.settings import Settings
from streamlearn.settings_loading import load_settings

DataDirOption = Annotated[
    Path | None,
    typer.Option("--data-dir", help="Broker data directory [default: $STREAMLEARN_DATA_DIR/kafka]"),
]
BootstrapOption = Annotated[
    str | None,
    typer.Option(
        "--bootstrap-servers",
        help="Kafka bootstrap servers [default: $STREAMLEARN_KAFKA_BOOTSTRAP]",
    ),
]


def port_option(help: str, *, any_port: bool = False) -> Any:
    """A TCP port option, checked to lie in 1-65535 (0 too with ``any_port``: any free one)."""
    return typer.Option(min=0 if any_port else 1, max=65535, help=help)


def check_duration(duration: float | None) -> None:
    """``--duration``: none (until Ctrl-C) or a positive number of seconds."""
    if duration is not None and not duration > 0:
        fail(f"--duration {duration:g}: a positive number of seconds expected (none: until Ctrl-C)")


MetricsPortOption = Annotated[
    int | None, port_option("Serve /metrics, /healthz and /readyz on this port", any_port=True)
]
MetricsHostOption = Annotated[
    str, typer.Option(help="Interface of the metrics and health endpoint")
]
TopologyOption = Annotated[
    Path | None,
    typer.Option("--file", help="Topology file [default: $STREAMLEARN_TOPOLOGY_FILE]"),
]


_GROUP = re.compile(r"[A-Za-z0-9._-]{1,200}")


def group_name(group: str) -> str:
    """A consumer group as ``--group`` takes it: it also names topics (the stores'
    changelogs), so a topic name's characters; an empty one was Faust's traceback."""
    if _GROUP.fullmatch(group) is None:
        raise typer.BadParameter(
            f"{group!r} is not a group name: 1 to 200 letters, digits, '.', '_' or '-'"
        )
    return group


def optional_group_name(group: str | None) -> str | None:
    """``--group`` when given (:func:`group_name`), None when not."""
    return None if group is None else group_name(group)


DEFAULT_AGENTS_GROUP = "streamlearn-agents"


def default_agents_group(chosen: Sequence[str], default: Sequence[str]) -> str:
    """The group of a worker started without ``--group``: ``streamlearn-agents`` for the
    default agents; other agents are refused, since the default group is theirs. Faust's
    assignor hands any member of a group any partition of the group's topics: `agents run`
    beside `agents run --only monitor`, both in the default group, left 3 of the 6
    partitions of telemetry.events to the monitor's worker, which committed offsets there
    for a preprocess it does not run (those events were never cleaned), and the monitor
    judged half the traffic."""
    if set(chosen) == set(default):
        return DEFAULT_AGENTS_GROUP
    own = "streamlearn-" + "-".join(chosen)
    fail(
        f"--only {','.join(chosen)} needs a consumer group of its own: the default "
        f"({DEFAULT_AGENTS_GROUP}) is the default agents' ({', '.join(default)}), and "
        f"workers of one group must run the same agents (each would read only some "
        f"partitions of its inputs); add --group {own} (what `streamlearn up` and the "
        f"Helm chart use), the same for every worker of these agents, or --group "
        f"{DEFAULT_AGENTS_GROUP} where they already run there and nothing else does"
    )


def fail(message: str) -> NoReturn:
    typer.echo(f"streamlearn: error: {message}", err=True)
    raise typer.Exit(1)


def command_settings(*, long_running: bool = False, **overrides: object) -> Settings:
    """The command's settings, logging set up. A command that answers and exits (not
    ``long_running``: a server, the agents, ``up``) keeps librdkafka's own lines off the
    terminal: with the broker away they were hundreds a minute before the one line that
    says what is wrong."""
    if not long_running:
        quiet_client_logs()
    settings = load_settings(**{k: v for k, v in overrides.items() if v is not None})
    # DEBUG is streamlearn's own loggers': the libraries' debug lines (Kafka protocol dumps,
    # every HTTP connection) stay at INFO.
    level = settings.log_level
    logging.basicConfig(
        level="INFO" if level == "DEBUG" else level,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    logging.getLogger("streamlearn").setLevel(level)
    if level != "DEBUG":
        # Client libraries log every request and rebalance at INFO; ours say what matters.
        for noisy in ("httpx", "httpx2", "aiokafka", "kafka", "faust", "mode", "aiohttp.access"):
            logging.getLogger(noisy).setLevel(logging.WARNING)
    if long_running:
        import aiokafka  # noqa: F401 - its loggers exist once it is imported

        # With Kafka away, aiokafka logs each failed retry (~80 lines a second): once per 10 s.
        quiet_repeats(("aiokafka",))
    return settings


def fetch_progress(jar: PinnedJar, index: int, total: int) -> None:
    """A line per broker jar downloaded (on stderr: stdout may carry `up --json`)."""
    typer.echo(f"fetching {jar.file_name} ({index}/{total}, {jar.size / 1e6:.1f} MB)", err=True)


def chosen_agents(
    only: str | None, known: Sequence[str], default: tuple[str, ...]
) -> tuple[str, ...]:
    """The agents ``--only`` names (comma-separated; spaces and empty items, such as a
    trailing comma's, ignored), ``default`` without it; an unknown name stops the command."""
    if only is None:
        return default
    chosen = tuple(name for name in (part.strip() for part in only.split(",")) if name)
    if not chosen:
        fail(f"--only names no agent; known: {', '.join(known)}")
    unknown = sorted(set(chosen) - set(known))
    if unknown:
        fail(f"unknown agents {unknown}; known: {list(known)}")
    return chosen


_RUNNING_ON = re.compile(r"Running on \S+:(\d+)\b")


def listening_port(message: str, requested: int) -> int:
    """The port a server listens on, from aiohttp's start message (``======== Running on
    http://127.0.0.1:41045 ========``): ``requested`` unless it was 0, "any port"."""
    found = _RUNNING_ON.search(message)
    return int(found.group(1)) if found else requested
