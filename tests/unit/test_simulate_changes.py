"""Injected changes: each does what its documentation says from its second, nothing before."""

from __future__ import annotations

import functools
from typing import Any

import numpy as np
import pytest

from streamlearn.collector.mapping import RequestContext, map_item
from streamlearn.simulate.changes import CHANGE_KINDS, Change, ChangeKind, parse_change
from streamlearn.simulate.traffic import Hit, Traffic, TrafficConfig, seeded_ids
from streamlearn.simulate.truth import Truth

START_MS = 1_796_000_000_000
AT_S = 60.0
END_S = 150.0


def _config(*changes: Change, **options: Any) -> TrafficConfig:
    return TrafficConfig(**{"rate": 100.0, "users": 1500, "seed": 8, "changes": changes, **options})


@functools.cache
def _hits(kind: ChangeKind | None) -> tuple[Traffic, list[Hit]]:
    config = _config() if kind is None else _config(Change(kind, AT_S))
    traffic = Traffic(config, START_MS, seeded_ids(config.seed))
    return traffic, traffic.until(END_S)


def _view(hits: list[Hit]) -> list[tuple[Any, ...]]:
    return [(h.at_s, h.kind, h.actor.user_id, h.item, h.late, h.slots) for h in hits]


def _page_views(hits: list[Hit], after: bool) -> list[Hit]:
    return [h for h in hits if h.kind != "duplicate" and (h.at_s >= AT_S) == after]


def test_changes_are_read_from_the_command_line_form() -> None:
    assert parse_change("bot_wave@120") == Change("bot_wave", 120.0)
    assert parse_change(" feature_drift@0.5 ") == Change("feature_drift", 0.5)
    assert str(parse_change("broken_model@90")) == "broken_model@90"
    for text in ("bot_invasion@10", "bot_wave", "@10"):
        with pytest.raises(ValueError, match="feature_drift, concept_drift, field_dropped"):
            parse_change(text)
    with pytest.raises(ValueError, match="'soon' is not a number"):
        parse_change("bot_wave@soon")
    with pytest.raises(ValueError, match="a simulated second of 0 or more"):
        parse_change("bot_wave@-1")
    with pytest.raises(ValueError, match="unknown change"):
        Change("meteor", 1.0)  # type: ignore[arg-type]


def test_a_config_takes_one_change_of_each_kind_and_drift_at_s_is_concept_drift() -> None:
    with pytest.raises(ValueError, match="bot_wave repeated"):
        _config(Change("bot_wave", 1.0), Change("bot_wave", 2.0))
    with pytest.raises(ValueError, match="not both"):
        _config(Change("concept_drift", 1.0), drift_at_s=2.0)
    config = _config(Change("bot_wave", 30.0), drift_at_s=45.0)
    assert config.change_at("bot_wave") == 30.0
    assert config.change_at("concept_drift") == 45.0
    assert config.change_at("feature_drift") is None
    assert not config.changed("bot_wave", 29.9)
    assert config.changed("bot_wave", 30.0)
    assert config.app_version_at(1e9) == "simulator"
    dropped = _config(Change("field_dropped", 5.0))
    assert (dropped.app_version_at(4.9), dropped.app_version_at(5.0)) == (
        "simulator",
        "simulator-2",
    )
    traffic = Traffic(config, START_MS, seeded_ids(1))
    assert traffic.changed("concept_drift", 45.0)
    assert traffic.truth.drift_at_s == 45.0
    assert traffic.change_at("bot_wave") == 30.0


@pytest.mark.parametrize("kind", CHANGE_KINDS)
def test_nothing_changes_before_the_change(kind: ChangeKind) -> None:
    _, plain = _hits(None)
    _, changed = _hits(kind)
    assert _view([h for h in changed if h.at_s < AT_S]) == _view(
        [h for h in plain if h.at_s < AT_S]
    )
    after = _view([h for h in changed if h.at_s >= AT_S])
    if kind == "broken_model":
        assert after == _view([h for h in plain if h.at_s >= AT_S]), "the model's, not traffic's"
    else:
        assert after != _view([h for h in plain if h.at_s >= AT_S])


def test_concept_drift_is_drift_at_s() -> None:
    _, changed = _hits("concept_drift")
    config = _config(drift_at_s=AT_S)
    older = Traffic(config, START_MS, seeded_ids(config.seed)).until(END_S)
    assert _view(changed) == _view(older)
    slots = [s for h in changed if h.at_s >= AT_S for s in h.slots]
    assert all(Truth(AT_S).p_click(s.features, s.context, AT_S) == s.p_click for s in slots)
    assert any(Truth().p_click(s.features, s.context, 0) != s.p_click for s in slots)


def test_feature_drift_makes_prices_e_times_dearer_under_the_same_truth() -> None:
    _, hits = _hits("feature_drift")

    def prices(after: bool) -> np.ndarray:
        slots = [s for h in _page_views(hits, after) for s in h.slots]
        return np.array([s.features["price"] for s in slots], dtype=float)

    before, after = prices(False), prices(True)
    for q in (0.25, 0.5, 0.75):
        ratio = np.quantile(after, q) / np.quantile(before, q)
        assert ratio == pytest.approx(np.e, rel=0.1)
    truth = Truth()
    slots = [s for h in hits for s in h.slots]
    assert all(truth.p_click(s.features, s.context, 0) == s.p_click for s in slots)
    # Dearer items are clicked less: the truth did not change, the inputs did.
    seen = [s for h in _page_views(hits, True) for s in h.slots]
    assert np.mean([s.p_click for s in seen]) < np.mean(
        [s.p_click for h in _page_views(hits, False) for s in h.slots]
    )


def test_field_dropped_sends_a_new_version_without_session_hints() -> None:
    _, hits = _hits("field_dropped")
    before = [h for h in _page_views(hits, False) if h.kind == "page_view"]
    after = [h for h in _page_views(hits, True) if h.kind == "page_view"]
    assert {h.item["app_version"] for h in before} == {"simulator"}
    assert {h.item["app_version"] for h in after} == {"simulator-2"}
    humans_before = [h for h in before if h.actor.kind == "human"]
    assert sum("session_hint" in h.item for h in humans_before) > 0.9 * len(humans_before)
    assert not any("session_hint" in h.item for h in after)
    context = RequestContext(START_MS, "10.0.0.1", None, "simulator")  # type: ignore[arg-type]
    for index, hit in enumerate(after[:200]):
        record = map_item(hit.item, index, context, reject_unknown=True).record
        assert record["session_hint"] is None
        assert record["app_version"] == "simulator-2"


def test_bot_wave_brings_bots_to_forty_percent_of_page_views() -> None:
    traffic, hits = _hits("bot_wave")

    def bot_share(after: bool) -> float:
        views = _page_views(hits, after)
        return sum(h.actor.kind != "human" for h in views) / len(views)

    assert bot_share(False) == pytest.approx(0.05, abs=0.015)
    # The wave's first bots arrive spread over a few seconds: judge it once it is in.
    settled = [h for h in hits if h.kind != "duplicate" and h.at_s >= AT_S + 10]
    assert sum(h.actor.kind != "human" for h in settled) / len(settled) == pytest.approx(
        0.4, abs=0.04
    )
    assert bot_share(True) > 0.3
    people = [sum(h.actor.kind == "human" for h in _page_views(hits, a)) for a in (False, True)]
    assert people[1] / (END_S - AT_S) == pytest.approx(people[0] / AT_S, rel=0.1)
    ids = [actor.user_id for actor in traffic.actors]
    assert len(ids) == len(set(ids))
    known = {actor.user_id for actor in _hits(None)[0].actors}
    assert {h.actor.kind for h in settled if h.actor.user_id not in known} == {
        "crawler",
        "burst_bot",
    }
