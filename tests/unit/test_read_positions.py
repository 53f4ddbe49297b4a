"""Which fetched records a step may be handed: exactly the continuation of the last ones."""

from __future__ import annotations

from streamlearn.runtime.read_positions import Admission, ReadPositions


def test_records_of_a_partition_never_sought_are_all_admitted() -> None:
    positions: ReadPositions[str] = ReadPositions()
    assert positions.admit("p", 7, 9) == Admission(start=7)


def test_the_continuation_of_what_was_handed_is_admitted_and_what_was_handed_is_trimmed() -> None:
    positions: ReadPositions[str] = ReadPositions()
    positions.handed("p", 4)
    assert positions.admit("p", 5, 8) == Admission(start=5)
    assert positions.admit("p", 2, 8) == Admission(start=5)
    assert positions.admit("p", 2, 4) == Admission()


def test_records_past_the_next_offset_are_refused_with_a_rewind_to_it() -> None:
    # The first record of a partition was fetched and dropped (a rebalance began); the
    # consumer's position moved past it, and nothing committed tells it to go back.
    positions: ReadPositions[str] = ReadPositions()
    positions.start_at("p", 0)
    assert positions.admit("p", 1, 6) == Admission(rewind=0)
    positions.start_at("p", 0)  # the rewind's own seek
    assert positions.admit("p", 0, 6) == Admission(start=0)


def test_a_hole_the_broker_confirms_after_a_rewind_is_admitted_as_a_gap() -> None:
    positions: ReadPositions[str] = ReadPositions()
    positions.start_at("p", 0)  # nothing committed; retention deleted offsets 0..4
    assert positions.admit("p", 5, 9) == Admission(rewind=0)
    positions.start_at("p", 0)
    assert positions.admit("p", 5, 9) == Admission(start=5, gap=(0, 4))
    positions.handed("p", 9)
    assert positions.admit("p", 10, 12) == Admission(start=10)


def test_a_stale_fetch_after_a_rewind_is_refused_again_and_the_hole_still_confirmed() -> None:
    positions: ReadPositions[str] = ReadPositions()
    positions.start_at("p", 0)
    assert positions.admit("p", 5, 9) == Admission(rewind=0)
    # A fetch in flight during the rewind continues after the refused records.
    assert positions.admit("p", 10, 12) == Admission(rewind=0)
    assert positions.admit("p", 5, 12) == Admission(rewind=0)
    assert positions.admit("p", 5, 12) == Admission(start=5, gap=(0, 4))


def test_a_seek_elsewhere_or_a_revocation_resets_the_partition() -> None:
    positions: ReadPositions[str] = ReadPositions()
    positions.start_at("p", 0)
    assert positions.admit("p", 5, 9) == Admission(rewind=0)
    positions.start_at("p", 3)
    assert positions.next("p") == 3
    assert positions.admit("p", 5, 9) == Admission(rewind=3)
    positions.forget("p")
    assert positions.next("p") is None
    assert positions.admit("p", 5, 9) == Admission(start=5)
