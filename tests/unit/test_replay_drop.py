"""``replay drop`` without a broker: what dropping a shadow namespace deletes."""

from __future__ import annotations

from pathlib import Path

import pytest

from streamlearn.replay.drop import plan_drop
from streamlearn.replay.exceptions import ReplayError
from streamlearn.settings import Settings
from streamlearn.topology.exceptions import TopologyError

LIVE = ["telemetry.events", "events.clean", "streamlearn-preprocess-__assignor-__leader"]
SHADOW = [
    "try1.telemetry.events",
    "try1.events.clean",
    "try1.streamlearn-replay-__assignor-__leader",
    "try1.streamlearn-replay-sessionise-sessions-changelog",
]
NEIGHBOURS = [
    "try10.telemetry.events",  # another namespace whose prefix starts the same
    "try1.x.events.clean",  # a namespace inside this one's prefix
    "try1.x.streamlearn-replay-__assignor-__leader",
    "try1.notes",  # under the prefix, but nothing replay agents makes
]


def test_only_what_replay_agents_makes_under_the_prefix_is_dropped(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path)
    (tmp_path / "replays").mkdir()
    manifest = tmp_path / "replays" / "try1.json"
    manifest.write_text("{}")
    plan = plan_drop(
        settings,
        "try1.",
        LIVE + SHADOW + NEIGHBOURS,
        ["streamlearn-preprocess", "try1.streamlearn-replay", "try10.streamlearn-replay"],
    )
    assert plan.topics == tuple(sorted(SHADOW))
    assert plan.groups == ("try1.streamlearn-replay",)
    assert plan.files == (manifest,), "the worker's log is only listed when it exists"
    assert plan.lines()[0] == "delete topic try1.events.clean"
    assert not plan.empty
    assert plan_drop(settings, "try2.", LIVE + SHADOW, []).empty


@pytest.mark.parametrize("prefix", ["", "live."])
def test_the_live_namespace_is_never_dropped(prefix: str) -> None:
    with pytest.raises(ReplayError, match="not the live one"):
        plan_drop(Settings(topic_prefix="live."), prefix, ["live.events.clean"], [])


def test_a_prefix_with_a_character_kafka_names_cannot_hold_is_refused() -> None:
    with pytest.raises(TopologyError, match="may only hold"):
        plan_drop(Settings(), "try 1.", [], [])


def test_a_namespace_without_its_dot_neither_drops_nor_reads_the_replay_with_it(
    tmp_path: Path,
) -> None:
    """`strict` and `strict.` are two namespaces whose replay files share a name: `replay
    drop --into strict` deleted the manifest of the replay into `strict.` (its topics and
    group left behind, undroppable by name), and `replay diff --into ns.` read the
    manifest of `ns` as its own."""
    import json

    from streamlearn.replay.shadow import manifest_path, read_manifest

    settings = Settings(data_dir=tmp_path)
    manifest = manifest_path(settings, "strict.")
    manifest.parent.mkdir()
    manifest.write_text(json.dumps({"shadow_prefix": "strict.", "agents": ["preprocess"]}))
    (tmp_path / "replays" / "strict-worker.log").write_text("log\n")
    assert plan_drop(settings, "strict", SHADOW, []).empty
    assert plan_drop(settings, "strict.", [], []).files == (
        manifest, tmp_path / "replays" / "strict-worker.log",
    )  # fmt: skip
    assert read_manifest(settings, "strict.")["agents"] == ["preprocess"]
    with pytest.raises(ReplayError, match=r"no replay into 'strict' here .* into 'strict\.'"):
        read_manifest(settings, "strict")


def test_a_namespace_no_replay_made_is_not_dropped_without_force(tmp_path: Path) -> None:
    """Found by a new user: `replay drop --into p66.` deleted all 13 topics of a namespace
    no replay had made (another deployment's: a tenant's prefix), `model.state` and
    `training.examples` with them. Only a namespace with a replay's marks (its manifest,
    its consumer group or its agents' changelogs) is dropped; another needs --force."""
    settings = Settings(data_dir=tmp_path)
    tenant = ["p66.telemetry.events", "p66.model.state", "p66.training.examples"]
    with pytest.raises(ReplayError, match=r"no replay into 'p66\.' is recorded here.*--force"):
        plan_drop(settings, "p66.", LIVE + tenant, ["p66.streamlearn-learner"])
    forced = plan_drop(settings, "p66.", LIVE + tenant, [], force=True)
    assert forced.topics == tuple(sorted(tenant))
    # A replay interrupted before its manifest: its group or changelogs mark it.
    assert plan_drop(settings, "try1.", SHADOW, []).topics == tuple(sorted(SHADOW))
    assert plan_drop(settings, "try1.", SHADOW[:2], ["try1.streamlearn-replay"]).topics


def test_a_namespace_whose_topics_are_being_read_is_not_dropped(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The same namespace had a learner reading it (group `p66.lw3`, one member): it then
    logged "Topic p66.training.examples not found". Any group with members assigned one
    of the topics refuses the drop, --force or not."""
    from streamlearn.replay import drop
    from streamlearn.replay.drop import DropPlan, drop_namespace
    from streamlearn.replay.groups import GroupMembers

    monkeypatch.setattr(drop, "refuse_if_active", lambda *args: None)
    monkeypatch.setattr(
        drop, "consumers_of", lambda settings, *topics: [GroupMembers("p66.lw3", ("w-1",))]
    )
    deleted: list[str] = []
    monkeypatch.setattr(drop, "_admin", lambda settings: deleted.append("admin"))
    plan = DropPlan("p66.", ("p66.training.examples",), (), ())
    with pytest.raises(ReplayError, match=r"being read by p66\.lw3 \(1 member"):
        drop_namespace(Settings(), plan)
    assert deleted == []


def test_a_replay_of_the_learner_without_a_signing_key_fails_before_copying(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Found by a new user: `replay agents --only learner --into t3.` planned, passed
    `--dry-run`, copied 5,250 records, and then its worker died with "the learner signs
    snapshots: set STREAMLEARN_MODEL_SIGNING_KEY", leaving a half-made namespace; `replay
    model` and `verify` sign and verify with `up`'s key in the data directory, this did
    not. It now takes that key as they do, and without any key it stops before Kafka is
    asked anything."""
    from typer.testing import CliRunner

    from streamlearn.cli import app

    monkeypatch.delenv("STREAMLEARN_MODEL_SIGNING_KEY", raising=False)
    result = CliRunner().invoke(
        app,
        ["replay", "agents", "--only", "learner", "--into", "t3.", "--dry-run",
         "--bootstrap-servers", "127.0.0.1:1"],
        env={"STREAMLEARN_DATA_DIR": str(tmp_path)},
    )  # fmt: skip
    assert result.exit_code == 1
    assert "snapshots are verified and signed with a key" in result.output, result.output
