"""What `up` says when it stops the broker it started: how to bring it back for a replay."""

from __future__ import annotations

from pathlib import Path

from streamlearn.kafka_local import BrokerConfig
from streamlearn.up.broker import restart_hint


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
