"""Every name and value survives the round trip through quoting and DuckDB unchanged."""

import datetime as dt
import decimal

import duckdb
from hypothesis import given
from hypothesis import strategies as st

from retail_etl import quoting

TEXT = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"), min_size=1, max_size=30)


@given(name=TEXT, value=TEXT)
def test_names_and_strings_round_trip(name, value):
    con = duckdb.connect()
    rel = con.sql(f"SELECT {quoting.lit(value)} AS {quoting.ident(name)}")
    assert rel.columns == [name]
    assert rel.fetchall() == [(value,)]


def test_typed_literals():
    con = duckdb.connect()
    row = con.execute("SELECT " + ", ".join(quoting.lit(v) for v in (
        None, True, 3, 2.5, decimal.Decimal("1.2345"), dt.date(2024, 1, 2), dt.datetime(2024, 1, 2, 3, 4, 5),
    ))).fetchone()
    assert row == (None, True, 3, 2.5, decimal.Decimal("1.2345"), dt.date(2024, 1, 2), dt.datetime(2024, 1, 2, 3, 4, 5))


def test_in_list_and_qualified():
    con = duckdb.connect()
    con.execute('CREATE SCHEMA "s""x"')
    con.execute('CREATE TABLE "s""x"."t" ("c\'" VARCHAR)')
    con.execute("""INSERT INTO "s""x"."t" VALUES ('a'), ('it''s'), ('z')""")
    where = quoting.in_list("c'", ["it's", "a"])
    table = quoting.qualified('s"x', "t")
    assert sorted(con.sql(f"SELECT * FROM {table} WHERE {where}").fetchall()) == [("a",), ("it's",)]
    assert quoting.in_list("c", []) == "false"
