"""Ids: time-sortable, and never repeated within a process however fast they are made."""

from __future__ import annotations

import threading
from datetime import UTC, datetime

from server.ids import id_floor, new_id, parse_id


def test_a_burst_of_ids_in_one_millisecond_has_no_repeats_and_increases() -> None:
    ids = [new_id() for _ in range(50_000)]
    assert len(set(ids)) == len(ids)
    assert ids == sorted(ids)


def test_ids_made_by_several_threads_at_once_never_repeat() -> None:
    made: list[list[int]] = [[] for _ in range(4)]

    def make(into: list[int]) -> None:
        into.extend(new_id() for _ in range(10_000))

    threads = [threading.Thread(target=make, args=(into,)) for into in made]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    every = [i for into in made for i in into]
    assert len(set(every)) == len(every)


def test_ids_at_a_given_time_sort_by_that_time() -> None:
    earlier = new_id(datetime(2024, 5, 1, tzinfo=UTC))
    later = new_id(datetime(2024, 5, 2, tzinfo=UTC))
    day_one, day_two = datetime(2024, 5, 1, tzinfo=UTC), datetime(2024, 5, 2, tzinfo=UTC)
    assert id_floor(day_one) <= earlier < id_floor(day_two) <= later
    assert new_id(datetime(2024, 5, 1)) >> 16 == earlier >> 16  # naive means UTC


def test_client_ids_are_parsed_strictly() -> None:
    assert parse_id(" 123 ") == 123
    for bad in (None, "", "-1", "1e3", "12a", "9" * 20, str(2**63)):
        assert parse_id(bad) is None
