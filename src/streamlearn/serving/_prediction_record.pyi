from collections.abc import Mapping
from typing import Any

def encode_record(
    header: bytes,
    request_id: str,
    user_id: str,
    route: bytes,
    features: Mapping[str, Any],
    context: Mapping[str, str],
    score: float,
    outcome: bytes,
    tail: bytes,
    /,
) -> bytes: ...
