"""engines/sql.py: the DuckDB-dialect SQL of the jobs as Spark SQL (pure; tests/spark runs it)."""

from __future__ import annotations

import re

import pytest
import sqlglot
from sqlglot import exp

from retail_etl import quoting
from retail_etl.engines.sql import java_regex, strptime_pattern, to_spark
from retail_etl.errors import ConfigError


def test_strptime_pattern_accepts_what_duckdb_accepts() -> None:
    regex, java = strptime_pattern("%d.%m.%Y %H:%M")
    assert java == "d'.'M'.'y' 'H':'m"
    for ok in ("01.03.2024 10:05", "1.3.2024 9:5", "1.3.24 9:05"):
        assert re.match(regex, ok), ok
    for bad in ("001.03.2024 10:05", "01.03.02024 10:05", "01.03.2024T10:05", "01.03.2024"):
        assert not re.match(regex, bad), bad


def test_strptime_pattern_quotes_literals_and_refuses_what_it_cannot_translate() -> None:
    assert strptime_pattern("%Y-%m-%dT%H:%M:%S.%f")[1] == "y'-'M'-'d'T'H':'m':'s'.'SSSSSS"
    assert strptime_pattern("%d/%m/%Y 100%%")[1] == "d'/'M'/'y' 100%'"
    assert strptime_pattern("'%Y'")[1] == "''''y''''"  # a quote, quoted
    with pytest.raises(ConfigError, match="%b is not supported"):
        strptime_pattern("%d %b %Y")


@pytest.mark.parametrize(("re2", "java"), [
    ("^(?:[a-z]+)$", r"(?d)^(?:[a-z]+)\z"),
    (r"^(?:\$[0-9]+[$])$", r"(?d)^(?:\$[0-9]+[$])\z"),
    ("^(?:[]$]|[^]$])$", r"(?d)^(?:[]$]|[^]$])\z"),
])
def test_java_regex_ends_at_the_end_only(re2: str, java: str) -> None:
    assert java_regex(re2) == java


def test_to_spark_leaves_no_duckdb_only_function() -> None:
    sql = to_spark(
        "SELECT CAST(TRY_STRPTIME(TRIM(x), '%d.%m.%Y') AS DATE), TRY_CAST(x AS INTEGER), isoyear(d), isodow(d), "
        "CAST(json_object('a', x) AS VARCHAR), CAST(a / b AS DECIMAL(18, 4)), list_filter([x], y -> y IS NOT NULL), "
        "array_length(l), regexp_matches(x, '^a$') FROM t SEMI JOIN k USING (x)"
    )
    for duckdb_only in ("TRY_STRPTIME", "ISOYEAR", "ISODOW", "JSON_OBJECT", "LIST_FILTER", "ARRAY_LENGTH",
                        "REGEXP_MATCHES"):
        assert duckdb_only not in sql.upper().replace("TO_JSON", ""), duckdb_only
    for spark in ("TRY_TO_TIMESTAMP", "YEAROFWEEK", "DAYOFWEEK_ISO", "TO_JSON(NAMED_STRUCT", "FILTER(", "SIZE(",
                  "RLIKE", "AS DOUBLE"):
        assert spark in sql, spark


ODD = ['a"b', "a`b", "it's", "back\\slash", "naïve 日本 😀", "a -- b", "a; DROP TABLE t", "/* c */", "new\nline", "a.b"]


@pytest.mark.parametrize("name", ODD)
def test_quoted_names_and_strings_survive_the_transpile(name: str) -> None:
    """Names and values quoted by retail_etl.quoting come out of to_spark as the same name and value."""
    sql = to_spark(
        f"SELECT {quoting.ident(name)} AS {quoting.ident(name + '2')}, {quoting.lit(name)} AS v "
        f"FROM {quoting.ident('v_' + name)} WHERE {quoting.ident(name)} = {quoting.lit(name)}"
    )
    parsed = sqlglot.parse_one(sql, read="spark")
    assert [c.name for c in parsed.find_all(exp.Column)] == [name, name]
    assert [a.alias for a in parsed.expressions] == [name + "2", "v"]
    assert [t.name for t in parsed.find_all(exp.Table)] == ["v_" + name]
    assert [s.this for s in parsed.find_all(exp.Literal) if s.is_string] == [name, name]
    assert len(sqlglot.parse(sql, read="spark")) == 1  # nothing escaped into a second statement
