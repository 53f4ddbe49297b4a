"""Signing-key rotation: the keyring, the learner's resume, and `streamlearn keys rotate`."""

from __future__ import annotations

import stat
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import SecretStr
from typer.testing import CliRunner

from streamlearn.cli import app
from streamlearn.exceptions import ConfigurationError
from streamlearn.models import SPECS, build_snapshot, load_model, verify_snapshot
from streamlearn.models.exceptions import BadSignature, RetiredKey
from streamlearn.models.keyring import Keyring, PreviousKey
from streamlearn.models.online import OnlineLearner
from streamlearn.settings import Settings
from streamlearn.settings_loading import load_settings
from streamlearn.up.signing_key import LOCAL_SIGNING_KEY_FILE

OLD, NEW = b"old-signing-key", b"new-signing-key"
NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)


def _snapshot(key: bytes, key_id: str | None, version: int = 1) -> dict[str, Any]:
    spec = SPECS["ctr"]
    return build_snapshot(
        spec, spec.new_model(), version=version, parent_version=None, trained_examples=0,
        offsets={}, metrics={}, created=NOW, key=key, key_id=key_id,
    )  # fmt: skip


def _keyring(clock: list[datetime]) -> Keyring:
    return Keyring(
        NEW, "k-new", (PreviousKey("k-old", OLD, NOW + timedelta(hours=1)),), lambda: clock[0]
    )


def test_the_previous_key_verifies_until_its_grace_ends_then_is_refused() -> None:
    clock = [NOW]
    keyring = _keyring(clock)
    verify_snapshot(_snapshot(NEW, "k-new"), keyring)
    verify_snapshot(_snapshot(OLD, "k-old"), keyring)
    assert load_model(_snapshot(OLD, "k-old"), keyring).version == 1
    with pytest.raises(BadSignature):
        verify_snapshot(_snapshot(OLD, "k-new"), keyring)  # claims the new id, old key
    with pytest.raises(BadSignature) as unknown:
        verify_snapshot(_snapshot(b"x", "k-other", version=4), keyring)  # current key decides
    assert "ctr v4" in str(unknown.value)
    verify_snapshot(_snapshot(NEW, None), keyring)  # ids are labels: the signature decides
    clock[0] = NOW + timedelta(hours=1)
    with pytest.raises(RetiredKey, match="retired at 2026-12-01T13:00") as retired:
        verify_snapshot(_snapshot(OLD, "k-old"), keyring)
    assert retired.value.reason == "retired_key"
    verify_snapshot(_snapshot(NEW, "k-new"), keyring)


def test_a_learner_resumes_from_a_snapshot_of_the_previous_key_and_signs_with_the_new() -> None:
    keyring = _keyring([NOW])
    learner = OnlineLearner(
        SPECS["ctr"], signing_key=NEW, signing_key_id="k-new", verification=keyring
    )
    learner.resume(_snapshot(OLD, "k-old", version=7))
    assert learner.version == 7
    after = learner.snapshot(NOW)
    assert after["signing_key_id"] == "k-new"
    verify_snapshot(after, NEW)
    without = OnlineLearner(SPECS["ctr"], signing_key=NEW, signing_key_id="k-new")
    with pytest.raises(BadSignature):
        without.resume(_snapshot(OLD, "k-old", version=7))


def test_a_previous_key_needs_the_end_of_its_grace_and_its_own_id() -> None:
    base = {"model_signing_key": SecretStr("new-signing-key-16"), "model_signing_key_id": "k-new"}
    with pytest.raises(ConfigurationError, match="UNTIL"):
        Keyring.from_settings(Settings(**base, model_previous_signing_key=SecretStr("o")))
    with pytest.raises(ConfigurationError, match="another id"):
        Keyring.from_settings(
            Settings(**base, model_previous_signing_key=SecretStr("o"),
                     model_previous_signing_key_id="k-new",
                     model_previous_signing_key_until=NOW)
        )  # fmt: skip
    with pytest.raises(ConfigurationError, match="MODEL_SIGNING_KEY"):
        Keyring.from_settings(Settings())


def test_keys_rotate_writes_a_private_settings_file_that_verifies_both_keys(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("STREAMLEARN_MODEL_SIGNING_KEY", "the-current-signing-key")
    monkeypatch.setenv("STREAMLEARN_MODEL_SIGNING_KEY_ID", "k-current")
    out = tmp_path / "rotated.yaml"
    result = CliRunner().invoke(app, ["keys", "rotate", "--out", str(out), "--grace", "2h"])
    assert result.exit_code == 0, result.output
    assert "the-current-signing-key" not in result.output, "keys are written to the file only"
    assert stat.S_IMODE(out.stat().st_mode) == 0o600
    rotated = yaml.safe_load(out.read_text())
    assert rotated["model_previous_signing_key"] == "the-current-signing-key"
    assert rotated["model_previous_signing_key_id"] == "k-current"
    assert rotated["model_signing_key_id"].startswith("k-")
    assert len(rotated["model_signing_key"]) == 64
    until = datetime.fromisoformat(rotated["model_previous_signing_key_until"])
    assert timedelta(hours=1, minutes=59) < until - datetime.now(UTC) <= timedelta(hours=2)
    monkeypatch.delenv("STREAMLEARN_MODEL_SIGNING_KEY")
    monkeypatch.delenv("STREAMLEARN_MODEL_SIGNING_KEY_ID")
    monkeypatch.setenv("STREAMLEARN_CONFIG_FILE", str(out))
    keyring = Keyring.from_settings(Settings())
    verify_snapshot(_snapshot(b"the-current-signing-key", "k-current"), keyring)
    verify_snapshot(
        _snapshot(rotated["model_signing_key"].encode(), rotated["model_signing_key_id"]), keyring
    )
    again = CliRunner().invoke(app, ["keys", "rotate", "--out", str(out), "--drop-previous"])
    assert again.exit_code == 1
    assert "exists" in again.output


def test_a_key_too_short_for_the_parts_can_still_be_rotated_away(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Keys under 16 characters are refused since 2026-12-04: a deployment that had one
    must be able to replace it with the tool that replaces keys, and verify what the old
    key signed until the grace ends."""
    monkeypatch.setenv("STREAMLEARN_MODEL_SIGNING_KEY", "short-key")
    with pytest.raises(ConfigurationError, match="keys rotate"):
        load_settings()
    out = tmp_path / "rotated.yaml"
    result = CliRunner().invoke(app, ["keys", "rotate", "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "shorter than 16 characters" in result.output
    assert "short-key" not in result.output
    monkeypatch.delenv("STREAMLEARN_MODEL_SIGNING_KEY")
    monkeypatch.setenv("STREAMLEARN_CONFIG_FILE", str(out))
    keyring = Keyring.from_settings(load_settings())
    verify_snapshot(_snapshot(b"short-key", None), keyring)
    monkeypatch.setenv("STREAMLEARN_MODEL_SIGNING_KEY", "short-key")
    with pytest.raises(ConfigurationError, match="at least 16"):  # nowhere else
        load_settings()


def _write_key_up_made(data_dir: Path) -> None:
    """The key file as `up` makes it: owner-only (one others may read is refused)."""
    key_file = data_dir / LOCAL_SIGNING_KEY_FILE
    key_file.write_text("the-key-up-made-for-signing\n")
    key_file.chmod(0o600)


def test_keys_rotate_after_up_rotates_the_key_up_made(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`up` signs with a key it makes in the data directory when none is set, and the
    replay commands find it there; `keys rotate` said "no STREAMLEARN_MODEL_SIGNING_KEY to
    rotate from" (found by rotating after `up --simulate`)."""
    _write_key_up_made(tmp_path)
    monkeypatch.setenv("STREAMLEARN_DATA_DIR", str(tmp_path))
    monkeypatch.delenv("STREAMLEARN_MODEL_SIGNING_KEY", raising=False)
    out = tmp_path / "rotated.yaml"
    result = CliRunner().invoke(app, ["keys", "rotate", "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "(with the previous key, the one `up` made, accepted until" in result.output
    rotated = yaml.safe_load(out.read_text())
    assert rotated["model_previous_signing_key"] == "the-key-up-made-for-signing"
    monkeypatch.setenv("STREAMLEARN_CONFIG_FILE", str(out))
    keyring = Keyring.from_settings(Settings())
    verify_snapshot(_snapshot(b"the-key-up-made-for-signing", None), keyring)


def test_after_rotating_the_key_up_made_up_and_replay_sign_with_the_new_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A plain `up` in the same data directory after `keys rotate` signed with the old key
    again: its learner refused the versions the new key had signed and published from an
    older one (a roll-back), and `replay verify` called the new versions bad signatures."""
    from streamlearn.up.signing_key import LOCAL_ROTATION_FILE, with_local_key

    _write_key_up_made(tmp_path)
    monkeypatch.setenv("STREAMLEARN_DATA_DIR", str(tmp_path))
    monkeypatch.delenv("STREAMLEARN_MODEL_SIGNING_KEY", raising=False)
    out = tmp_path / "rotated.yaml"
    result = CliRunner().invoke(app, ["keys", "rotate", "--out", str(out), "--grace", "1h"])
    assert result.exit_code == 0, result.output
    assert f"`up` and the replay commands in {tmp_path} sign with it from now on" in result.output
    rotated = yaml.safe_load(out.read_text())
    assert stat.S_IMODE((tmp_path / LOCAL_ROTATION_FILE).stat().st_mode) == 0o600
    settings = with_local_key(Settings())  # what `up` and `replay` run with, no file given
    assert settings.model_signing_key is not None
    assert settings.model_signing_key.get_secret_value() == rotated["model_signing_key"]
    assert settings.model_signing_key_id == rotated["model_signing_key_id"]
    keyring = Keyring.from_settings(settings)
    verify_snapshot(_snapshot(b"the-key-up-made-for-signing", None), keyring)
    verify_snapshot(
        _snapshot(rotated["model_signing_key"].encode(), rotated["model_signing_key_id"]), keyring
    )
    # The parts `up` starts get the rotation's settings, the previous key included.
    from streamlearn.secret_settings import signing_environment

    for name, value in signing_environment(settings).items():
        monkeypatch.setenv(name, value)
    part = Keyring.from_settings(Settings())
    verify_snapshot(_snapshot(b"the-key-up-made-for-signing", None), part)
    for name in signing_environment(settings):
        monkeypatch.delenv(name)
    # A second rotation from the data directory sees the first one's grace.
    again = CliRunner().invoke(app, ["keys", "rotate", "--out", str(tmp_path / "again.yaml")])
    assert again.exit_code == 1
    assert "is still accepted until" in again.output
    # A key given in the settings is theirs: the data directory's rotation does not apply.
    monkeypatch.setenv("STREAMLEARN_MODEL_SIGNING_KEY", "a-deployment-s-own-key")
    own = with_local_key(Settings())
    assert own.model_signing_key is not None
    assert own.model_signing_key.get_secret_value() == "a-deployment-s-own-key"
    assert own.model_previous_signing_key is None


def test_keys_rotate_refuses_a_missing_directory_and_a_grace_in_the_past(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Found by a new user: a missing directory was a FileNotFoundError traceback, and
    ``--grace -5h`` wrote a grace that had already ended (the old key refused at once)."""
    monkeypatch.setenv("STREAMLEARN_MODEL_SIGNING_KEY", "the-current-signing-key")
    monkeypatch.setenv("STREAMLEARN_MODEL_SIGNING_KEY_ID", "k-current")
    missing = tmp_path / "nosuch" / "rotated.yaml"
    result = CliRunner().invoke(app, ["keys", "rotate", "--out", str(missing)])
    assert result.exit_code == 1
    assert f"{missing.parent} does not exist" in result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)
    past = CliRunner().invoke(
        app, ["keys", "rotate", "--out", str(tmp_path / "r.yaml"), "--grace", "-5h"]
    )
    assert past.exit_code == 2
    assert "zero or more" in past.output
    assert "--grace" in past.output
    huge = CliRunner().invoke(
        app, ["keys", "rotate", "--out", str(tmp_path / "r.yaml"), "--grace", "99999999999d"]
    )
    assert huge.exit_code == 2, "an OverflowError traceback before"
    assert "--grace" in huge.output
    assert not (tmp_path / "r.yaml").exists()


def test_keys_rotate_names_a_previous_key_without_an_id_as_such(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("STREAMLEARN_MODEL_SIGNING_KEY", "the-current-signing-key")
    monkeypatch.delenv("STREAMLEARN_MODEL_SIGNING_KEY_ID", raising=False)
    monkeypatch.setenv("STREAMLEARN_DATA_DIR", str(tmp_path))
    result = CliRunner().invoke(app, ["keys", "rotate", "--out", str(tmp_path / "r.yaml")])
    assert result.exit_code == 0, result.output
    assert "None" not in result.output
    assert "(with the previous key, which has no key id, accepted until" in result.output


def test_a_second_rotation_within_the_previous_key_s_grace_is_refused_unless_asked(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A second rotation dropped the first previous key without a word: a worker restarted
    with the new file then refused every snapshot still signed with it."""
    monkeypatch.setenv("STREAMLEARN_MODEL_SIGNING_KEY", "the-current-signing-key")
    monkeypatch.setenv("STREAMLEARN_MODEL_SIGNING_KEY_ID", "k-current")
    first = tmp_path / "r1.yaml"
    assert CliRunner().invoke(app, ["keys", "rotate", "--out", str(first)]).exit_code == 0
    for variable in ("STREAMLEARN_MODEL_SIGNING_KEY", "STREAMLEARN_MODEL_SIGNING_KEY_ID"):
        monkeypatch.delenv(variable)
    monkeypatch.setenv("STREAMLEARN_CONFIG_FILE", str(first))
    second = tmp_path / "r2.yaml"
    refused = CliRunner().invoke(app, ["keys", "rotate", "--out", str(second)])
    assert refused.exit_code == 1
    assert "the previous key 'k-current' is still accepted until" in refused.output
    assert "--drop-previous" in refused.output
    assert not second.exists()
    dropped = CliRunner().invoke(app, ["keys", "rotate", "--out", str(second), "--drop-previous"])
    assert dropped.exit_code == 0, dropped.output
    assert "drops the previous key 'k-current'" in dropped.output
    assert "the-current-signing-key" not in second.read_text()


def test_an_old_key_left_in_the_environment_beside_the_rotated_file_is_named(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Found by a new user: the environment outranks STREAMLEARN_CONFIG_FILE, so with the
    old key still in it a process given the rotated file signed with the old key (under
    the new id, without an error), or refused to start saying only that the previous key
    needs another id."""
    monkeypatch.setenv("STREAMLEARN_MODEL_SIGNING_KEY", "the-current-signing-key")
    out = tmp_path / "rotated.yaml"
    assert CliRunner().invoke(app, ["keys", "rotate", "--out", str(out)]).exit_code == 0
    monkeypatch.setenv("STREAMLEARN_CONFIG_FILE", str(out))
    for with_id in (False, True):
        if with_id:
            monkeypatch.setenv("STREAMLEARN_MODEL_SIGNING_KEY_ID", "k-current")
            rotated = yaml.safe_load(out.read_text())
            out2 = tmp_path / "rotated-with-id.yaml"
            out2.write_text(
                yaml.safe_dump({**rotated, "model_previous_signing_key_id": "k-current"})
            )
            out2.chmod(0o600)
            monkeypatch.setenv("STREAMLEARN_CONFIG_FILE", str(out2))
        with pytest.raises(ConfigurationError, match="STREAMLEARN_MODEL_SIGNING_KEY") as refused:
            Keyring.from_settings(Settings())
        assert "environment" in str(refused.value)
        assert "the-current-signing-key" not in str(refused.value)


def test_a_model_resumed_from_the_previous_keys_snapshot_is_published_again_with_the_new() -> None:
    """A model that learned nothing during a rotation's grace kept its old signature: once
    the grace ended, a worker that (re)started refused it and served the fallback, and the
    learner itself could no longer resume from it (found by a probe reading the code)."""
    from tests.unit.test_learning import T0, examples, positioned

    clock = [NOW]
    keyring = _keyring(clock)
    before = OnlineLearner(SPECS["ctr"], signing_key=OLD, signing_key_id="k-old")
    before.learn_many(positioned(examples(50)))
    first = before.snapshot(T0)
    learner = OnlineLearner(SPECS["ctr"], signing_key=NEW, signing_key_id="k-new",
                            verification=keyring)  # fmt: skip
    learner.resume(first)
    assert learner.snapshot_due(0.0)  # with no new example
    again = learner.snapshot(T0, 0.0)
    assert again is not None
    assert (again["version"], again["parent_version"], again["signing_key_id"]) == (2, 1, "k-new")
    assert bytes(again["payload"]) == bytes(first["payload"])
    assert again["trained_examples"] == first["trained_examples"] == 50
    assert not learner.snapshot_due(1.0)
    clock[0] = NOW + timedelta(hours=2)  # the grace is over
    with pytest.raises(RetiredKey):
        load_model(first, keyring)
    assert load_model(again, keyring).version == 2
    # Resumed from the current key's snapshot: nothing to publish until it learns.
    resumed = OnlineLearner(SPECS["ctr"], signing_key=NEW, signing_key_id="k-new",
                            verification=keyring)  # fmt: skip
    resumed.resume(again)
    assert not resumed.snapshot_due(0.0)


@pytest.mark.parametrize("judge", ["trainee", "candidate"])
def test_a_gated_model_resumed_from_the_previous_key_is_published_again_promoted(
    judge: str,
) -> None:
    """With a promotion gate the re-signed version was published held back (trainee) or
    not at all (candidate: a cut, then nothing to publish without new examples)."""
    from dataclasses import replace

    from tests.unit.test_learning import T0, examples, positioned

    spec = replace(SPECS["ctr"], promotion_margin=0.0, promotion_window=50,
                   promotion_judge=judge)  # fmt: skip
    keyring = _keyring([NOW])
    before = OnlineLearner(spec, signing_key=OLD, signing_key_id="k-old")
    before.learn_many(positioned(examples(80)))
    first = before.snapshot(T0)
    assert first is not None
    learner = OnlineLearner(spec, signing_key=NEW, signing_key_id="k-new", verification=keyring)
    learner.resume(first)
    assert learner.snapshot_due(0.0)
    again = learner.snapshot(T0, 0.0)
    assert again is not None
    assert (again["version"], again["signing_key_id"]) == (2, "k-new")
    assert again["metrics"].get("promoted", 1.0) == 1.0
    assert bytes(again["payload"]) == bytes(first["payload"])


def test_the_replay_commands_say_which_key_they_verify_with(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Found by a new user: with STREAMLEARN_DATA_DIR left unset, `replay verify` took the
    key of the default data directory (another run's) and called every version a bad
    signature, with nothing saying which key it had used; with no key anywhere, the error
    named only STREAMLEARN_MODEL_SIGNING_KEY, not the data directory `up` keeps its key in."""
    from streamlearn.up.signing_key import LOCAL_ROTATION_FILE, key_source

    monkeypatch.delenv("STREAMLEARN_MODEL_SIGNING_KEY", raising=False)
    monkeypatch.setenv("STREAMLEARN_DATA_DIR", str(tmp_path))
    assert key_source(Settings()) is None
    for command in (["verify", "ctr"], ["model", "ctr", "--dry-run"]):
        result = CliRunner().invoke(app, ["replay", *command])
        assert result.exit_code == 1
        assert "set STREAMLEARN_MODEL_SIGNING_KEY, or STREAMLEARN_DATA_DIR to the directory " in (
            result.output
        )
        assert f"(now {tmp_path}; " in result.output
    (tmp_path / LOCAL_SIGNING_KEY_FILE).write_text("the-key-up-made-for-signing\n")
    assert key_source(Settings()) == str(tmp_path / LOCAL_SIGNING_KEY_FILE)
    (tmp_path / LOCAL_ROTATION_FILE).write_text("model_signing_key: rotated-key-of-this-dir\n")
    assert key_source(Settings()) == str(tmp_path / LOCAL_ROTATION_FILE)
    monkeypatch.setenv("STREAMLEARN_MODEL_SIGNING_KEY", "a-deployment-s-own-key")
    assert key_source(Settings()) == "STREAMLEARN_MODEL_SIGNING_KEY"


def test_a_bad_signature_says_which_key_it_was_checked_with() -> None:
    """Found by a new user: a worker given only the old key refused the new key's snapshots
    with "signature does not match the metadata and payload", as it refuses a tampered
    one: nothing told "the new key is not rolled out here yet" from an attack."""
    keyring = _keyring([NOW])
    with pytest.raises(BadSignature) as unknown:
        verify_snapshot(_snapshot(b"x", "k-attacker"), keyring)
    assert str(unknown.value).endswith(
        "signature does not match the metadata and payload: it names key 'k-attacker', "
        "which this process does not hold (it holds 'k-new', and 'k-old' until "
        "2026-12-01T13:00:00+00:00); checked with 'k-new' and the previous key 'k-old'"
    )
    with pytest.raises(BadSignature) as tampered:
        verify_snapshot(_snapshot(OLD, "k-new"), keyring)
    assert str(tampered.value).endswith(
        "signature does not match the metadata and payload: checked with key 'k-new', the "
        "one it names"
    )
    with pytest.raises(BadSignature) as plain:
        verify_snapshot(_snapshot(OLD, None), Keyring(NEW))
    assert str(plain.value).endswith(
        "signature does not match the metadata and payload: it names no key; checked with "
        "this process's key (no id)"
    )


@pytest.mark.parametrize("grace", ["31d", "1000000d", "745h"])
def test_a_grace_longer_than_a_month_is_refused(tmp_path: Path, grace: str) -> None:
    """Found by a new user: `--grace 1000000d` kept the old key valid until the year 4764
    without a word: a typo, and a leaked key is never retired."""
    result = CliRunner().invoke(
        app, ["keys", "rotate", "--out", str(tmp_path / "r.yaml"), "--grace", grace],
        env={"STREAMLEARN_MODEL_SIGNING_KEY": "the-current-signing-key"},
    )  # fmt: skip
    assert result.exit_code == 2
    assert "at most 30 days" in result.output
    assert not (tmp_path / "r.yaml").exists()


def test_a_previous_key_given_without_its_id_verifies_what_it_signed_during_the_grace() -> None:
    """Found by a new user of the chart: its rotation steps set the new key, its id, the
    previous key and the grace, but not the previous key's id. The old key's snapshots
    name '2026-11', which this process did not know, so they were checked with the new key
    and refused: every worker and the learner refused the old key's snapshots during the
    grace, and a worker started then served the fallback."""
    settings = Settings(
        model_signing_key=SecretStr("the-new-signing-key-2026-12"),
        model_signing_key_id="2026-12",
        model_previous_signing_key=SecretStr("the-old-signing-key-2026-11"),
        model_previous_signing_key_until=datetime.now(UTC) + timedelta(hours=1),
    )
    keyring = Keyring.from_settings(settings)
    old = _snapshot(b"the-old-signing-key-2026-11", "2026-11")
    verify_snapshot(old, keyring)
    assert load_model(old, keyring).version == 1
    verify_snapshot(_snapshot(b"the-new-signing-key-2026-12", "2026-12"), keyring)
    with pytest.raises(BadSignature) as forged:
        verify_snapshot(_snapshot(b"x" * 20, "2026-11"), keyring)
    assert str(forged.value).endswith("checked with '2026-12' and the previous key (no id)")
    # Once the grace is over the previous key verifies nothing.
    over = Keyring(keyring.current, keyring.current_id, keyring.previous,
                   lambda: datetime.now(UTC) + timedelta(hours=2))  # fmt: skip
    with pytest.raises(BadSignature, match=r"checked with '2026-12'$"):
        verify_snapshot(old, over)


def test_keys_rotate_without_a_key_names_the_data_directory_it_looked_in(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Found after `up --data-dir`: `keys rotate` rotates the key `up` made in
    STREAMLEARN_DATA_DIR, but said only "no STREAMLEARN_MODEL_SIGNING_KEY to rotate from",
    not where it had looked for that key (`up --data-dir` names the broker's directory)."""
    monkeypatch.setenv("STREAMLEARN_DATA_DIR", str(tmp_path))
    monkeypatch.delenv("STREAMLEARN_MODEL_SIGNING_KEY", raising=False)
    monkeypatch.delenv("STREAMLEARN_CONFIG_FILE", raising=False)
    result = CliRunner().invoke(app, ["keys", "rotate", "--out", str(tmp_path / "r.yaml")])
    assert result.exit_code == 1
    assert "no key to rotate from" in result.output
    assert f"(now {tmp_path}; " in result.output
    assert "model-signing.key" in result.output
    assert not (tmp_path / "r.yaml").exists()
