"""The traffic generator: deterministic, the requested shares, outcomes from the true model."""

from __future__ import annotations

import functools
import hashlib
import json
import math
import uuid
from dataclasses import asdict

import numpy as np
import pytest
from crawlerdetect import CrawlerDetect

from streamlearn.collector.exceptions import InvalidEventError
from streamlearn.collector.mapping import RequestContext, map_item
from streamlearn.simulate.traffic import Hit, Traffic, TrafficConfig, seeded_ids
from streamlearn.simulate.truth import Truth
from streamlearn.simulate.world import CRAWLER_AGENTS, HUMAN_AGENTS

START_MS = 1_796_000_000_000


def run(seconds: float = 120, **options: object) -> tuple[Traffic, list[Hit]]:
    config = TrafficConfig(**{"rate": 200.0, "users": 2000, "seed": 3, **options})  # type: ignore[arg-type]
    traffic = Traffic(config, START_MS, seeded_ids(config.seed))
    return traffic, traffic.until(seconds)


@functools.cache
def default_run() -> list[Hit]:
    return run(bot_share=0.1)[1]


def test_same_seed_same_traffic_other_seed_other_traffic() -> None:
    first = [(h.at_s, h.kind, h.item, h.slots) for h in run(20)[1]]
    again = [(h.at_s, h.kind, h.item, h.slots) for h in run(20)[1]]
    other = [(h.at_s, h.kind, h.item, h.slots) for h in run(20, seed=4)[1]]
    assert first == again
    assert first != other


def test_hits_come_in_time_order_at_about_the_rate() -> None:
    hits = default_run()
    times = [h.at_s for h in hits]
    assert times == sorted(times)
    page_views = [h for h in hits if h.kind != "duplicate"]
    assert len(page_views) / 120 == pytest.approx(200, rel=0.1)


def test_shares_of_bots_duplicates_late_and_malformed() -> None:
    hits = default_run()
    originals = [h for h in hits if h.kind != "duplicate"]
    n = len(originals)
    bots = sum(h.actor.kind != "human" for h in originals)
    assert bots / n == pytest.approx(0.10, abs=0.02)
    assert sum(h.actor.kind == "crawler" for h in originals) > 0.3 * bots
    assert sum(h.kind == "duplicate" for h in hits) / n == pytest.approx(0.02, abs=0.005)
    assert sum(h.late for h in originals) / n == pytest.approx(0.03, abs=0.006)
    assert sum(h.kind == "malformed" for h in hits) / n == pytest.approx(0.01, abs=0.004)


def test_duplicates_resend_the_same_event_later() -> None:
    hits = default_run()
    by_id = {h.item["event_id"]: h for h in hits if h.kind == "page_view"}
    duplicates = [h for h in hits if h.kind == "duplicate"]
    assert duplicates
    for duplicate in duplicates:
        original = by_id[duplicate.item["event_id"]]
        assert duplicate.item == original.item
        assert duplicate.at_s > original.at_s


def test_late_events_have_a_client_time_in_the_past() -> None:
    for hit in default_run()[:20_000]:
        if hit.kind != "page_view":
            continue  # malformed: client_ts may be garbage; duplicates: resent later
        lag_s = (START_MS + hit.at_s * 1000 - hit.item["client_ts"]) / 1000
        if hit.late:
            assert 15 <= lag_s <= 905
        else:
            assert abs(lag_s) < 6  # only the client's clock skew


def test_every_item_fits_the_collector_except_the_malformed_ones() -> None:
    context = RequestContext(START_MS, "10.0.0.1", None, None)  # type: ignore[arg-type]
    for index, hit in enumerate(default_run()[:5000]):
        if hit.kind == "malformed":
            with pytest.raises(InvalidEventError):
                map_item(hit.item, index, context, reject_unknown=True)
        else:
            assert map_item(hit.item, index, context, reject_unknown=True).kind == "event"


def test_crawlers_are_known_crawlers_and_people_are_not() -> None:
    detector = CrawlerDetect()
    assert all(detector.isCrawler(agent) for agent in CRAWLER_AGENTS)
    people = [agent for agents in HUMAN_AGENTS.values() for agent in agents]
    assert not any(detector.isCrawler(agent) for agent in people)


def test_behavioural_bots_burst_and_people_do_not() -> None:
    hits = [h for h in default_run() if h.kind != "duplicate"]
    last: dict[str, float] = {}
    fastest: dict[str, float] = {"human": 1e9, "burst_bot": 1e9}
    for hit in hits:
        kind = hit.actor.kind
        if kind in fastest and hit.actor.user_id in last:
            fastest[kind] = min(fastest[kind], hit.at_s - last[hit.actor.user_id])
        last[hit.actor.user_id] = hit.at_s
    assert fastest["burst_bot"] < 0.05
    assert fastest["human"] >= 0.5


def test_only_people_get_recommendations_and_outcomes_follow_the_truth() -> None:
    hits = default_run()
    assert all(not h.slots for h in hits if h.actor.kind != "human")
    slots = [s for h in hits for s in h.slots]
    assert all(not s.clicked for s in slots if not s.seen)
    assert 0.5 < sum(s.seen for s in slots) / len(slots) < 0.9
    seen = [s for s in slots if s.seen]
    p = np.array([s.p_click for s in seen])
    clicked = np.array([s.clicked for s in seen])
    high, low = p > 0.6, p < 0.15
    assert clicked[high].mean() == pytest.approx(p[high].mean(), abs=0.03)
    assert clicked[low].mean() == pytest.approx(p[low].mean(), abs=0.03)
    assert clicked[high].mean() > 4 * clicked[low].mean()
    converted = [s for s in seen if s.clicked]
    assert sum(s.converted for s in converted) / len(converted) == pytest.approx(0.3, abs=0.05)
    for slot in seen[:100]:
        assert Truth().p_click(slot.features, slot.context, 0) == slot.p_click


def test_drift_changes_the_truth_at_the_chosen_time() -> None:
    truth = Truth(drift_at_s=60)
    features = {"price": 20.0, "hour": 0, "category": "games", "recency_s": None, "loyalty": "none"}
    context = {"placement": "top", "device": "mobile"}
    mobile = {**features, "is_mobile": True}
    desktop = {**features, "is_mobile": False}
    assert truth.p_click(mobile, context, 59) > truth.p_click(desktop, context, 59)
    assert truth.p_click(mobile, context, 60) < truth.p_click(desktop, context, 60)
    garden = {**desktop, "category": "garden"}
    assert truth.p_click(garden, context, 0) < truth.p_click(desktop, context, 0)
    assert truth.p_click(garden, context, 61) > truth.p_click(desktop, context, 61)


def test_clicks_follow_the_drifted_truth_after_the_drift() -> None:
    hits = run(120, drift_at_s=60.0)[1]

    def mobile_vs_desktop_ctr(after: bool) -> tuple[float, float]:
        seen = [s for h in hits if (h.at_s >= 60) == after for s in h.slots if s.seen]
        rates = []
        for mobile in (True, False):
            group = [s.clicked for s in seen if s.features["is_mobile"] is mobile]
            rates.append(sum(group) / len(group))
        return rates[0], rates[1]

    before_mobile, before_desktop = mobile_vs_desktop_ctr(after=False)
    after_mobile, after_desktop = mobile_vs_desktop_ctr(after=True)
    assert before_mobile > before_desktop + 0.1
    assert after_mobile < after_desktop - 0.1


def test_invalid_options_are_refused() -> None:
    with pytest.raises(ValueError, match="bot_share"):
        TrafficConfig(bot_share=1.5)
    with pytest.raises(ValueError, match="rate"):
        TrafficConfig(rate=0)


@pytest.mark.parametrize("rate", [math.inf, math.nan])
def test_a_rate_that_is_not_a_number_of_requests_is_refused(rate: float) -> None:
    """`--rate inf` passed the check and crashed later with an OverflowError traceback
    (`up --simulate`: once the broker and every part had started)."""
    with pytest.raises(ValueError, match="--rate"):
        TrafficConfig(rate=rate)


def _digest(config: TrafficConfig, seconds: float) -> tuple[int, str]:
    """How many hits ``config`` makes in ``seconds``, and a SHA-256 of all of them."""
    digest = hashlib.sha256()
    hits = Traffic(config, START_MS, seeded_ids(config.seed)).until(seconds)
    for hit in hits:
        whole = [hit.at_s, hit.kind, hit.late, asdict(hit.actor), hit.item,
                 [asdict(slot) for slot in hit.slots]]  # fmt: skip
        digest.update(json.dumps(whole, sort_keys=True).encode())
    return len(hits), digest.hexdigest()


@pytest.mark.parametrize(
    ("config", "seconds", "expected"),
    [
        (
            TrafficConfig(rate=200.0, users=2000, seed=3, bot_share=0.1),
            60,
            (11440, "ed745f9f64674a02c1634155060a6a790358f6347a78c09ec2862fc7f6a3ee80"),
        ),
        (
            TrafficConfig(seed=11, drift_at_s=30.0),
            90,
            (4236, "510b1651a25a6bf40e6f94f0d932234d80f69052deb66194c1d58d0d7ca15804"),
        ),
        (
            TrafficConfig(
                rate=20.0, users=50, seed=5, bot_share=0.3, malformed_share=0.2, duplicate_share=0.2
            ),
            60,
            (1396, "664f467096df33db467c16577ec3c5a25c1ab0cc991206579167b54759a52769"),
        ),
    ],
)
def test_traffic_without_changes_is_exactly_what_it_was(
    config: TrafficConfig, seconds: float, expected: tuple[int, str]
) -> None:
    """Digests pinned when people's recency became stationary (new visitors at a constant
    share, last visits as long ago as a pause): a config without changes makes exactly
    these hits (times, actors, items, slots and outcomes, ids included), whatever changes
    the code learns to inject."""
    assert _digest(config, seconds) == expected


def test_seeded_ids_are_those_of_one_draw_per_id() -> None:
    new_id = seeded_ids(9)
    rng = np.random.default_rng([9, 7])
    ids = [new_id() for _ in range(2500)]
    expected = [str(uuid.UUID(bytes=rng.bytes(16), version=4)) for _ in range(2500)]
    assert ids == expected
    assert ids[:10] != [seeded_ids(9, stream=13)() for _ in range(10)]
