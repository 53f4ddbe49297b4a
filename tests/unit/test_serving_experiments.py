"""Experiment routing: deterministic, weighted, salted assignment and which models it covers."""

from __future__ import annotations

import subprocess
import sys
from collections import Counter
from dataclasses import replace
from datetime import UTC, datetime

import pytest

from streamlearn.models import SPECS
from streamlearn.serde import AvroSerde, InMemoryRegistry
from streamlearn.serving.exceptions import InvalidExperiment
from streamlearn.serving.experiments import (
    Arm,
    Experiment,
    ExperimentBook,
    bucket,
    name_problems,
    numeric_differences,
    overlaps,
    task_mismatches,
    unknown_models,
    unserved_models,
)


def _experiment(weights: tuple[float, ...] = (0.5, 0.5), salt: str = "s1") -> Experiment:
    arms = tuple(
        Arm(name, model, weight)
        for (name, model), weight in zip(
            [("control", "ctr"), ("tree", "ctr_tree"), ("own", "ctr@own")], weights, strict=False
        )
    )
    return Experiment(name="ctr-vs-tree", salt=salt, arms=arms)


def test_bucket_is_a_fixed_function_of_salt_and_user() -> None:
    # Golden values: a change here reshuffles every running experiment.
    assert bucket("s1", "user-1") == pytest.approx(bucket("s1", "user-1"))
    assert 0.0 <= bucket("s1", "user-1") < 1.0
    assert bucket("s1", "user-1") != bucket("s2", "user-1")
    assert (
        bucket("", "")
        == int.from_bytes(__import__("hashlib").blake2b(b"\x00", digest_size=8).digest(), "big")
        / 2**64
    )


def test_an_arm_is_the_cut_of_the_weights_that_holds_the_users_bucket() -> None:
    """``assign`` hashes with the salt's state copied (faster); the point is ``bucket``'s."""
    experiment = _experiment((1.0, 2.0, 1.0))
    cuts = list(zip(experiment.arms, experiment.bounds, strict=True))
    for i in range(2000):
        user = f"user-{i}" if i % 3 else f"ü-{i}\udc80"  # a lone surrogate is hashed as sent
        point = bucket(experiment.salt, user)
        expected = next(arm for arm, bound in cuts if point < bound)
        assert experiment.assign(user) == expected


def test_same_arm_in_another_process() -> None:
    users = [f"user-{i}" for i in range(2000)]
    experiment = _experiment((1.0, 2.0, 1.0))
    here = [experiment.assign(u).name for u in users]
    code = (
        "from streamlearn.serving.experiments import Arm, Experiment\n"
        "e = Experiment(name='x', salt='s1', arms=(Arm('control','ctr',1.0),"
        "Arm('tree','ctr_tree',2.0),Arm('own','ctr@own',1.0)))\n"
        "print(','.join(e.assign(f'user-{i}').name for i in range(2000)))\n"
    )
    # A fresh interpreter has another PYTHONHASHSEED: assignment must not depend on it.
    there = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        env={"PYTHONHASHSEED": "12345", "PATH": ""},
    ).stdout.strip()
    assert there.split(",") == here


@pytest.mark.parametrize("weights", [(0.5, 0.5), (0.9, 0.1), (1.0, 2.0, 1.0), (3.0, 0.0, 1.0)])
def test_shares_follow_the_weights(weights: tuple[float, ...]) -> None:
    experiment = _experiment(weights)
    n = 40_000
    counts = Counter(experiment.assign(f"u{i}").name for i in range(n))
    total = sum(weights)
    for arm in experiment.arms:
        expected = arm.weight / total
        assert abs(counts[arm.name] / n - expected) < 0.01, (arm, counts)
        if arm.weight == 0:
            assert counts[arm.name] == 0


def test_salt_reshuffles_and_weight_change_moves_few() -> None:
    users = [f"u{i}" for i in range(10_000)]
    a = _experiment((0.5, 0.5), salt="a")
    b = _experiment((0.5, 0.5), salt="b")
    moved_by_salt = sum(a.assign(u).name != b.assign(u).name for u in users)
    assert 0.4 < moved_by_salt / len(users) < 0.6
    wider = _experiment((0.6, 0.4), salt="a")
    moved_by_weight = sum(a.assign(u).name != wider.assign(u).name for u in users)
    assert 0.05 < moved_by_weight / len(users) < 0.15, "only users near the boundary move"


@pytest.mark.parametrize(
    "arms",
    [
        (),
        (Arm("a", "ctr", 1.0), Arm("a", "ctr", 1.0)),
        (Arm("a", "ctr", -1.0),),
        (Arm("a", "ctr", 0.0),),
        (Arm("a", "ctr", float("nan")),),
        (Arm("a", "ctr", 1e308), Arm("b", "ctr@b", 1e308)),  # their sum overflows to inf
        (Arm("a", "", 1.0),),
    ],
)
def test_invalid_experiments_are_refused(arms: tuple[Arm, ...]) -> None:
    with pytest.raises(InvalidExperiment):
        Experiment(name="x", salt="s", arms=arms)


def test_record_round_trip_through_avro() -> None:
    serde = AvroSerde.for_topic(InMemoryRegistry(), "experiments", "Experiment")
    experiment = Experiment(
        name="e",
        salt="s",
        arms=(Arm("control", "ctr", 1.0), Arm("t", "ctr@t", 1.0)),
        description="d",
        updated_ts=datetime(2026, 11, 30, tzinfo=UTC),
    )
    back = Experiment.from_record(serde.decode(serde.encode(experiment.to_record())))
    assert back == experiment
    with pytest.raises(InvalidExperiment):
        Experiment.from_record({"name": "e"})


def test_book_covers_arm_models_and_their_base_spec() -> None:
    book = ExperimentBook()
    book.put(_experiment((1.0, 1.0, 1.0)))
    covering = book.covering("ctr")
    assert covering is not None
    assert covering is book.covering("ctr_tree")
    assert book.covering("conversion_value") is None
    other = Experiment(name="a-first", salt="s", arms=(Arm("x", "ctr", 1.0),))
    book.put(other)
    assert book.covering("ctr") is other, "the experiment whose name sorts first routes"
    book.put(Experiment(name="a-first", salt="s", arms=(Arm("x", "ctr", 1.0),), enabled=False))
    assert book.covering("ctr") is not None
    assert book.covering("ctr").name == "ctr-vs-tree"  # type: ignore[union-attr]
    book.remove("ctr-vs-tree")
    assert book.covering("ctr") is None


def test_an_arm_whose_model_belongs_to_no_spec_is_named() -> None:
    experiment = Experiment(
        name="e",
        salt="e",
        arms=(Arm("a", "ctr@x", 1.0), Arm("b", "ctr_tre", 1.0), Arm("c", "ctr~newest", 1.0)),
    )
    assert unknown_models(experiment, ["ctr", "ctr_tree"]) == [
        "arm b: no model spec 'ctr_tre' (known: ctr, ctr_tree)"
    ]


def test_overlaps_name_the_other_enabled_experiments_and_which_one_routes() -> None:
    ours = Experiment(name="b-test", salt="s", arms=(Arm("a", "ctr", 1.0),))
    others = [
        Experiment(name="a-test", salt="s", arms=(Arm("x", "ctr@t", 1.0), Arm("y", "ctr_tree", 1))),
        Experiment(name="c-test", salt="s", arms=(Arm("x", "ctr~newest", 1.0),)),
        Experiment(name="off", salt="s", arms=(Arm("x", "ctr", 1.0),), enabled=False),
        Experiment(name="tree", salt="s", arms=(Arm("x", "ctr_tree", 1.0),)),
        Experiment(name="b-test", salt="old", arms=(Arm("a", "ctr", 1.0),)),  # replaced
    ]
    assert overlaps(ours, others) == [
        "experiment 'a-test' also covers ctr: 'a-test' routes it (of several enabled "
        "experiments covering a model, the name that sorts first routes)",
        "experiment 'c-test' also covers ctr: 'b-test' routes it (of several enabled "
        "experiments covering a model, the name that sorts first routes)",
    ]
    book = ExperimentBook()
    for experiment in [ours, *others[:4]]:
        book.put(experiment)
    covering = book.covering("ctr")
    assert covering is not None
    assert covering.name == "a-test", "what the warning says"
    assert overlaps(replace(ours, enabled=False), others) == []


def test_names_that_would_route_wrongly_are_named() -> None:
    """Found by a new user: `experiments set "   "` was taken and, sorting first, routed
    every ctr request; `ctr@` (an empty arm), a name with a space and a 100,000-character
    name were taken too."""
    experiment = Experiment(
        name="   ",
        salt="s",
        arms=(Arm("a b", "ctr", 1.0), Arm("c", "ctr@", 1.0), Arm("d", "ctr", 1.0)),
    )
    assert name_problems(experiment) == [
        "experiment name '   ': letters, digits, '.', '_' and '-', starting with a letter or "
        "digit, at most 100",
        "arm name 'a b': letters, digits, '.', '_' and '-', starting with a letter or digit, "
        "at most 100",
        "arm c: model 'ctr@' names no arm after '@'",
    ]
    long = Experiment(name="e" * 101, salt="s", arms=(Arm("a", "ctr", 1.0),))
    assert len(name_problems(long)) == 1
    assert name_problems(_experiment()) == []
    # Found by a new user: `ctr@x@y` was said to name no arm after its '@'.
    twice = Experiment(name="e", salt="s", arms=(Arm("a", "ctr@x@y", 1.0),))
    assert name_problems(twice) == [
        "arm a: model 'ctr@x@y': the arm after '@' is 'x@y'; letters, digits, '.', '_' and "
        "'-', starting with a letter or digit, at most 100"
    ]


def test_newest_before_the_arm_is_named() -> None:
    """Found by a new user: `--arm a=ctr~newest@x:1` was set. No snapshot is ever named
    ``ctr~newest@x`` (the newest of the per-arm model is ``ctr@x~newest``), so the arm's
    users got the fallback for good while `experiments set` said nothing."""
    misplaced = Experiment(name="e", salt="s", arms=(Arm("a", "ctr~newest@x", 1.0),))
    assert name_problems(misplaced) == [
        "arm a: model 'ctr~newest@x': '~newest' goes last (ctr@x~newest: the newest "
        "version of ctr@x); no model is ever named 'ctr~newest@x', so the arm's users "
        "would get the fallback for good"
    ]
    newest_of_arm = Experiment(name="e", salt="s", arms=(Arm("a", "ctr@x~newest", 1.0),))
    assert name_problems(newest_of_arm) == []


def test_duplicate_arm_names_are_named() -> None:
    with pytest.raises(InvalidExperiment, match="arm names must be unique, non-empty: 'a' twice"):
        Experiment(name="e", salt="s", arms=(Arm("a", "ctr", 1.0), Arm("a", "ctr", 1.0)))


def test_reading_experiments_without_a_broker_is_the_kafka_error_said_once(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Found by a new user: `experiments list` without a broker printed the client's repr
    (`reading experiments: KafkaError{code=_TRANSPORT,...}`); the command line says a
    KafkaException in one line with what to check."""
    from confluent_kafka import KafkaException

    from streamlearn.cli_errors import one_line_error
    from streamlearn.ports import free_port
    from streamlearn.serving import experiment_topic
    from streamlearn.settings import Settings

    monkeypatch.setattr(experiment_topic, "TIMEOUT_S", 0.5)
    settings = Settings(kafka_bootstrap=f"127.0.0.1:{free_port()}")
    with pytest.raises(KafkaException) as failed:
        experiment_topic.read_experiments(settings, InMemoryRegistry())
    said = one_line_error(failed.value)
    assert said is not None
    assert said.startswith("Kafka: Failed to get metadata: Local: Broker transport failure")
    assert "KafkaError{" not in said


def test_arms_reading_other_features_as_numbers_are_named() -> None:
    """While an experiment is on, a predict request is refused (422) for a string in any
    feature one of its arms reads as a number: an arm whose spec reads more features so
    turns away requests its endpoint accepted before. ``experiments set`` warns."""
    specs = {**SPECS, "wide": replace(SPECS["ctr"], name="wide", numeric_features=("age",))}
    mixed = Experiment(name="e", salt="e", arms=(Arm("a", "ctr", 1.0), Arm("b", "wide@x", 1.0)))
    assert numeric_differences(mixed, specs) == [
        "arm a (ctr) does not read age as a number and arm b (wide) does: while the "
        "experiment is on, a predict request sending a string there is refused (422) "
        "whichever arm it is routed to",
        "arm b (wide) does not read hour, is_mobile, price, recency_s as numbers and arm a "
        "(ctr) does: while the experiment is on, a predict request sending a string there "
        "is refused (422) whichever arm it is routed to",
    ]
    same = Experiment(name="e", salt="e", arms=(Arm("a", "ctr", 1.0), Arm("b", "ctr_tree", 1.0)))
    assert numeric_differences(same, specs) == []
    assert numeric_differences(replace(mixed, enabled=False), specs) == []
    unknown = Experiment(name="e", salt="e", arms=(Arm("a", "ctr", 1), Arm("b", "nope", 1)))
    assert numeric_differences(unknown, specs) == []  # unknown_models names that one


def test_an_experiment_survives_pickling_and_copying() -> None:
    import copy
    import pickle

    experiment = _experiment((1.0, 2.0, 1.0))
    for again in (pickle.loads(pickle.dumps(experiment)), copy.deepcopy(experiment)):
        assert again == experiment
        assert [again.assign(f"u{i}") for i in range(50)] == [
            experiment.assign(f"u{i}") for i in range(50)
        ]


def test_arms_of_models_of_another_task_are_refused_and_unserved_ones_warned_of() -> None:
    """Found by a new user: `experiments set aa --arm control=ctr:0.5 --arm
    cv=conversion_value:0.5` was taken without a word: half of ctr's users got
    `conversion_value`'s fallback (no worker served it), and a published regression model
    would have answered a click split with values up to 10,000."""
    mixed = Experiment(
        name="aa", salt="aa", arms=(Arm("control", "ctr", 0.5), Arm("cv", "conversion_value", 0.5))
    )
    assert task_mismatches(mixed, SPECS) == [
        "arms of models of different tasks: control: ctr (binary), cv: conversion_value "
        "(regression); one endpoint's users would get scores that mean different things"
    ]
    assert task_mismatches(_experiment(), SPECS) == []
    assert unserved_models(mixed, ["ctr", "ctr_tree"]) == [
        "arm cv: conversion_value is not in STREAMLEARN_MODELS here (ctr, ctr_tree): workers "
        "that do not serve it answer the arm's users with the fallback"
    ]
    assert unserved_models(_experiment(), ["ctr", "ctr_tree"]) == []


def test_an_empty_salt_is_refused() -> None:
    """`--salt ''` was taken: every experiment with it splits the same users the same way."""
    assert name_problems(_experiment(salt="")) == [
        "salt '': empty (every experiment with it would split users the same way); leave "
        "--salt out for the experiment's name"
    ]
