"""What the services answered for each thing the simulator sent, by identity: the ground
truth a run's outputs are checked against (``up --simulate --chaos``).

Kept only when asked for (:attr:`Simulator.ledger`): a long run would otherwise hold every
event id it ever sent.
"""

from __future__ import annotations

from collections.abc import Iterable, KeysView, Mapping
from dataclasses import dataclass, field
from typing import Any


@dataclass
class Ledger:
    """Event ids by the collector's answer, and the predictions the worker answered.

    ``refused`` maps the collector's ``written`` field of a 503 (``none``: nothing of the
    request was written; ``partial``: some may be) to the event ids of those requests;
    ``unanswered`` holds the ids of requests that got no answer (timeout, connection
    refused): whether they were written is unknown. ``answered_at`` maps the request id of
    each prediction answered 200 whose slot the simulated person saw to when the answer
    came (``seen``: those ids), and ``impressions`` holds the request ids whose impression
    feedback the collector accepted.
    """

    accepted: set[str] = field(default_factory=set)
    refused: dict[str, set[str]] = field(default_factory=dict)
    unanswered: set[str] = field(default_factory=set)
    retry_after: int = 0
    """503 answers that carried ``Retry-After``."""
    answered_at: dict[str, float] = field(default_factory=dict)
    """Seen request id → when (wall clock, epoch s) the worker's answer came."""
    impressions: set[str] = field(default_factory=set)

    @property
    def seen(self) -> KeysView[str]:
        """The request ids of the predictions answered 200 whose slot was seen."""
        return self.answered_at.keys()

    def answered(
        self, items: Iterable[Mapping[str, Any]], status: int, body: Mapping[str, Any] | None
    ) -> None:
        """The collector answered ``status`` (``body``: its JSON, if any) to ``items``."""
        events = [str(i.get("event_id")) for i in items if "request_id" not in i]
        if status == 202:
            self.accepted.update(events)
            self.impressions.update(
                str(item["request_id"]) for item in items if item.get("kind") == "impression"
            )
        elif status == 503:
            written = str((body or {}).get("written", "unknown"))
            self.refused.setdefault(written, set()).update(events)

    def unanswered_items(self, items: Iterable[Mapping[str, Any]]) -> None:
        self.unanswered.update(str(i.get("event_id")) for i in items if "request_id" not in i)
