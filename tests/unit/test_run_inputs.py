"""Execution inputs (``run --input``) and source freshness: pure checks."""

from __future__ import annotations

import datetime as dt

import pytest

from retail_etl.config.model import Expect
from retail_etl.errors import InputError
from retail_etl.pipeline.freshness import lateness, newest_ingest
from retail_etl.pipeline.results import RunInputs


def test_an_input_round_trips_through_its_recorded_form() -> None:
    inputs = RunInputs.from_json('{"date": "2023-01-15", "ingest_date": "2023-01-16", "bookmarks": "pause"}')
    assert inputs == RunInputs(ingest_date=dt.date(2023, 1, 16), bookmarks="pause", date=dt.date(2023, 1, 15))
    assert inputs.to_request() == {"date": "2023-01-15", "ingest_date": "2023-01-16", "bookmarks": "pause"}
    assert RunInputs.from_request(inputs.to_request()) == inputs
    assert RunInputs.from_json("{}") == RunInputs() and RunInputs().to_request() == {}


@pytest.mark.parametrize(("document", "message"), [
    ('{"date": "2024-01-05"', "not valid JSON: Expecting ',' delimiter"),
    ('{"dat": "2024-01-05"}', "unknown key 'dat' in the execution input; did you mean 'date'?"),
    ('{"Date": "2024-01-05", "date": "2024-01-05"}', "unknown key 'Date'"),
    ('{"date": "05/01/2024"}', 'date: "05/01/2024" is not a date'),
    ('{"ingest_date": 20240105}', "ingest_date: 20240105 is not a date"),
    ('{"bookmarks": "off"}', "bookmarks: 'off' is not a bookmark mode"),
    ('["2024-01-05"]', "must be a JSON object, got an array"),
    ('"2024-01-05"', "must be a JSON object, got a string"),
])
def test_a_bad_input_is_refused_with_what_and_where(document: str, message: str) -> None:
    with pytest.raises(InputError) as caught:
        RunInputs.from_json(document)
    assert message in caught.value.message and caught.value.hint


NOW = dt.datetime(2024, 3, 10, 12, 0, tzinfo=dt.UTC)


@pytest.mark.parametrize(("age", "expect", "level"), [
    (dt.timedelta(hours=23), Expect(every="1d"), None),
    (dt.timedelta(hours=25), Expect(every="1d"), "warn"),
    (dt.timedelta(hours=25), Expect(every="1d", fail="2d"), "warn"),
    (dt.timedelta(hours=49), Expect(every="1d", fail="2d"), "fail"),
    (dt.timedelta(minutes=31), Expect(every="30m", fail="30m"), "fail"),
    (None, Expect(every="1w"), "warn"),
    (None, Expect(every="1w", fail="2w"), "fail"),
])
def test_lateness_is_measured_from_the_newest_delivery(age, expect: Expect, level: str | None) -> None:
    newest = None if age is None else NOW - age
    late = lateness("sales", expect, newest, NOW)
    assert (late.level if late else None) == level
    if late is not None and newest is None:
        assert late.message.startswith("no delivery yet")


def test_the_newest_ingest_time_is_the_latest_in_the_manifest() -> None:
    assert newest_ingest(["2024-03-01T10:00:00+00:00", "2024-03-09T08:30:00+00:00", "2024-03-05T00:00:00"]) == \
        dt.datetime(2024, 3, 9, 8, 30, tzinfo=dt.UTC)
    assert newest_ingest([]) is None


@pytest.mark.parametrize(("every", "fail", "error"), [
    ("1x", None, "is not a duration"), ("0d", None, "is not a duration"), ("2d", "1d", "must not be shorter"),
])
def test_an_expectation_is_checked_when_loaded(every: str, fail: str | None, error: str) -> None:
    with pytest.raises(ValueError, match=error):
        Expect(every=every, fail=fail)
