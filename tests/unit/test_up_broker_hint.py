"""What `up` says when it stops the broker it started: how to bring it back for a replay."""

from __future__ import annotations

from pathlib import Path

from streamlearn.kafka_local import BrokerConfig
from streamlearn.settings import Settings
from streamlearn.up.broker import restart_hint
from streamlearn.up.signing_key import missing_key_hint


def test_up_says_how_to_bring_its_broker_back_with_its_records() -> None:
    """Found by a new user: after the quickstart's `up`, which stops the broker it started,
    nothing said the records were still there nor how to reach them for `replay`."""
    data = Path("/tmp/d/kafka")
    assert restart_hint(BrokerConfig(data_dir=data)) == (
        "its records stay in /tmp/d/kafka: `streamlearn kafka start --data-dir /tmp/d/kafka` "
        "brings it back, then `streamlearn registry serve`, for `streamlearn replay` "
        "(docs/replay.md)"
    )
    hint = restart_hint(BrokerConfig(data_dir=data, port=29092))
    assert "`streamlearn kafka start --data-dir /tmp/d/kafka --port 29092`" in hint
    assert "`streamlearn replay` with STREAMLEARN_KAFKA_BOOTSTRAP=127.0.0.1:29092" in hint


def test_a_broker_directory_of_its_own_is_told_apart_from_where_the_key_is() -> None:
    """Found by a new user: after `up --data-dir /tmp/me-data`, the hint named only that
    directory; `STREAMLEARN_DATA_DIR=/tmp/me-data streamlearn replay verify ctr` then found
    no signing key (`up` keeps it in STREAMLEARN_DATA_DIR, of which `--data-dir` is only the
    broker's part)."""
    hint = restart_hint(BrokerConfig(data_dir=Path("/tmp/me-data")), key_dir=Path("/srv/sl"))
    assert hint.endswith(
        "for `streamlearn replay` with STREAMLEARN_DATA_DIR=/srv/sl (its signing key is "
        "there) (docs/replay.md)"
    ), hint
    # The default layout (<STREAMLEARN_DATA_DIR>/kafka) needs no word: the same setting
    # finds both.
    layout = restart_hint(BrokerConfig(data_dir=Path("/srv/sl/kafka")), key_dir=Path("/srv/sl"))
    assert "STREAMLEARN_DATA_DIR" not in layout
    both = restart_hint(BrokerConfig(data_dir=Path("/tmp/b"), port=29092), key_dir=Path("/srv/sl"))
    assert (
        "`streamlearn replay` with STREAMLEARN_KAFKA_BOOTSTRAP=127.0.0.1:29092 and "
        "STREAMLEARN_DATA_DIR=/srv/sl (its signing key is there)"
    ) in both


def test_without_a_key_the_replay_commands_say_up_s_data_dir_is_not_its_broker_s() -> None:
    settings = Settings(data_dir=Path("/tmp/me-data"))
    hint = missing_key_hint(settings)
    assert "(now /tmp/me-data; `up --data-dir` names only where the broker's data goes)" in hint
