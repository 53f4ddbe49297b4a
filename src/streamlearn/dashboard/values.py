"""Plain values for the page from decoded Avro: times as epoch seconds, numbers as finite
floats.

JSON has no NaN or infinity (``JSON.parse`` refuses the ``NaN`` Python's json writes), and a
metric map may hold either (an AUC before both classes were seen); they become ``None``,
which the page shows as a gap or a dash.
"""

from __future__ import annotations

import math
from datetime import datetime


def finite(value: object) -> float | None:
    """``value`` as a float when it is a finite number, else None."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    number = float(value)
    return number if math.isfinite(number) else None


def epoch_s(value: object) -> float | None:
    """A decoded timestamp (``datetime``, or epoch milliseconds when read without logical
    types) as epoch seconds."""
    if isinstance(value, datetime):
        return value.timestamp()
    number = finite(value)
    return None if number is None else number / 1000.0


def finite_map(values: object) -> dict[str, float | None]:
    """A metrics or statistics map with every value made :func:`finite`."""
    if not isinstance(values, dict):
        return {}
    return {str(k): finite(v) for k, v in sorted(values.items())}
