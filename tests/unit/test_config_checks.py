"""Everything checkable without data fails at load time, all problems at once; environment
overrides are strings parsed only as the key's declared type."""

from __future__ import annotations

from pathlib import Path

import pytest

from retail_etl.config import checks
from retail_etl.config.loader import load_config
from retail_etl.errors import ConfigError

DELIMITERS = [",", "'", '"', "\t", "*", "@", "%", "[", "{", "&", "#", "|", ";", "!", "-", "?", ":"]
CUSTOM = 'CustomSql "SELECT COUNT(*) FROM primary WHERE quantity < 0" < 10'


def _edit(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text, old
    path.write_text(text.replace(old, new, 1))


def _add_rule(path: Path, rule: str) -> None:
    _edit(path, "      - rule: RowCount > 0\n        severity: fail\n",
          f"      - rule: RowCount > 0\n        severity: fail\n      - rule: {rule}\n        severity: warn\n")


def _message(path: Path, env: dict[str, str] | None = None) -> str:
    with pytest.raises(ConfigError) as info:
        load_config(path, env=env or {})
    return str(info.value)


# -- environment overrides ------------------------------------------------------------------------


@pytest.mark.parametrize("delimiter", DELIMITERS)
def test_any_character_is_a_delimiter_from_the_environment(scaffold_config: Path, delimiter: str) -> None:
    config = load_config(scaffold_config, env={"RETAIL_ETL__SOURCES__SALES__CSV__DELIMITER": delimiter})
    assert config.sources["sales"].csv.delimiter == delimiter


def test_overrides_convert_to_the_declared_type_only(scaffold_config: Path) -> None:
    env = {
        "RETAIL_ETL__ENGINE__THREADS": "3",
        "RETAIL_ETL__SOURCES__SALES__CSV__HEADER": "false",
        "RETAIL_ETL__SOURCES__SALES__CSV__COLUMN_NAMES": '["a", "b"]',
        "RETAIL_ETL__SOURCES__SALES__CSV__QUOTE": "#",
        "RETAIL_ETL__WORKFLOW__CIRCUIT__COOLDOWN_SECONDS": "90.5",
        "RETAIL_ETL__LAKE__NAMESPACE": "123",  # a string key: "123" stays text
        "RETAIL_ETL__SOURCES__SALES__COLUMNS__CUSTOMER_ID": "null",  # a column named "null", not None
        "RETAIL_ETL__SOURCES__SALES__DEFAULTS__CURRENCY": "yes",
    }
    config = load_config(scaffold_config, env=env)
    sales = config.sources["sales"]
    assert config.engine.threads == 3
    assert sales.csv.header is False and sales.csv.column_names == ("a", "b") and sales.csv.quote == "#"
    assert config.workflow.circuit.cooldown_seconds == 90.5
    assert config.lake.namespace == "123"
    assert sales.column_spec("customer_id").column == "null"
    assert sales.defaults["currency"] == "yes"


def test_a_bad_override_names_the_variable(scaffold_config: Path) -> None:
    message = _message(scaffold_config, {"RETAIL_ETL__ENGINE__THREADS": "many"})
    assert message.startswith("RETAIL_ETL__ENGINE__THREADS (environment): engine.threads: ")
    message = _message(scaffold_config, {"RETAIL_ETL__SOURCES__SALES__CSV__NULL_VALUES": "[unclosed"})
    assert "RETAIL_ETL__SOURCES__SALES__CSV__NULL_VALUES" in message and "takes a list or mapping as JSON" in message


# -- memory, encodings, date formats ------------------------------------------------------------------


@pytest.mark.parametrize(("value", "words"), [
    ("lots", "'lots' is not a size"),
    ("2 gigs", "unknown unit 'gigs'"),
    ("1.5", "unknown unit '(none)'"),
    ("10KB", "too little memory"),
    ("120%", "between 0% and 100%"),
])
def test_memory_limit_is_checked_at_load(scaffold_config: Path, value: str, words: str) -> None:
    _edit(scaffold_config, "memory_limit: 1.5GB", f"memory_limit: {value!r}")
    message = _message(scaffold_config)
    assert "retail-etl.yaml:15: engine.memory_limit: " in message and words in message


@pytest.mark.parametrize("value", ["2GB", "512MiB", "1.5 gb", "80%", "3T"])
def test_duckdb_sizes_load(scaffold_config: Path, value: str) -> None:
    _edit(scaffold_config, "memory_limit: 1.5GB", f"memory_limit: {value!r}")
    assert load_config(scaffold_config, env={}).engine.memory_limit == value


def test_an_unknown_encoding_suggests_one(scaffold_config: Path) -> None:
    _edit(scaffold_config, "encoding: utf-8          #", "encoding: latin-9x          #")
    assert "sources.sales.csv.encoding: unknown encoding 'latin-9x'" in _message(scaffold_config)
    _edit(scaffold_config, "encoding: latin-9x", "encoding: utf8x")
    assert "did you mean 'utf-8'?" in _message(scaffold_config) or "did you mean 'utf8'?" in _message(scaffold_config)
    _edit(scaffold_config, "encoding: utf8x", "encoding: rot13")
    assert "'rot13' is not a text encoding" in _message(scaffold_config)


def test_date_formats_are_checked_for_the_configured_engine(scaffold_config: Path) -> None:
    _edit(scaffold_config, '"%Y-%m-%d %H:%M:%S"', '"%Y-%m-%d %H:%M:%Q"')
    assert "sources.sales.columns.sold_at.format: date format '%Y-%m-%d %H:%M:%Q': %Q is not" in _message(scaffold_config)
    _edit(scaffold_config, "%H:%M:%Q", "%I:%M %p")  # DuckDB reads it; Spark's translation does not
    assert load_config(scaffold_config, env={}).sources["sales"].columns["sold_at"].format == "%Y-%m-%d %I:%M %p"
    message = _message(scaffold_config, {"RETAIL_ETL__ENGINE__NAME": "spark"})
    assert "sources.sales.columns.sold_at.format" in message and "not supported by the Spark engine" in message


# -- CustomSql ----------------------------------------------------------------------------------------


def test_custom_sql_over_known_columns_and_tables_loads(scaffold_config: Path) -> None:
    _add_rule(scaffold_config, CUSTOM)
    _add_rule(scaffold_config, 'CustomSql "SELECT COUNT(*) FROM primary p JOIN products x ON p.product_id = '
                               'x.product_id WHERE x.category = \'toys\' AND p.source_line > 1" >= 0')
    _add_rule(scaffold_config, 'CustomSql "WITH neg AS (SELECT quantity AS q FROM primary) '
                               'SELECT COUNT(*) FROM neg WHERE q < 0" < 5')
    assert len(load_config(scaffold_config, env={}).sources["sales"].rules) == 16


def test_custom_sql_on_an_unknown_column_suggests_the_canonical_one(scaffold_config: Path) -> None:
    _add_rule(scaffold_config, CUSTOM.replace("quantity", "quantty"))
    message = _message(scaffold_config)
    assert "sources.sales.rules.13: rule 'CustomSql" in message
    assert "column 'quantty' is not in its tables" in message and "did you mean 'quantity'?" in message


def test_custom_sql_may_name_source_columns_but_not_another_namespace(scaffold_config: Path) -> None:
    _add_rule(scaffold_config, 'CustomSql "SELECT COUNT(*) FROM primary WHERE source.Coupon IS NOT NULL '
                               'AND quantity < 0" = 0')
    assert len(load_config(scaffold_config, env={}).sources["sales"].rules) == 14
    _add_rule(scaffold_config, 'CustomSql "SELECT COUNT(*) FROM primary WHERE sorce.Coupon IS NOT NULL" = 0')
    message = _message(scaffold_config)
    assert "sources.sales.rules.13: rule 'CustomSql" in message and "sorce" in message
    assert 'source."<column>" is a column of the file' in message


@pytest.mark.parametrize("table", ["other.secrets", "read_csv_auto", "sales_validated", "main.primary"])
def test_custom_sql_reads_only_primary_and_the_references(scaffold_config: Path, table: str) -> None:
    _add_rule(scaffold_config, f'CustomSql "SELECT COUNT(*) FROM {table}" < 10')
    message = _message(scaffold_config)
    assert f"the query reads '{table}', which a CustomSql rule cannot read" in message
    assert "it may read primary, products" in message


def test_custom_sql_on_products_sees_no_products_table(scaffold_config: Path) -> None:
    text = scaffold_config.read_text()
    start = text.index("  products:\n")
    rules = text.index("    rules:", start)
    scaffold_config.write_text(text[:rules] + "    rules:\n      - rule: CustomSql \"SELECT COUNT(*) FROM products\""
                               " > 0\n        severity: warn\n" + text[text.index("\n  sales:", start):])
    assert "it may read primary" in _message(scaffold_config)


# -- extras, and all problems at once --------------------------------------------------------------------


def test_a_missing_extra_gives_the_pip_line(scaffold_config: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(checks, "_installed", lambda module: module not in ("pyspark", "boto3"))
    message = _message(scaffold_config, {"RETAIL_ETL__ENGINE__NAME": "spark", "RETAIL_ETL__LAKE__ROOT": "s3://b/l"})
    assert "engine.name: the spark engine needs pyspark, which is not installed (hint: pip install " \
           "'retail-etl[spark]')" in message
    assert "lake.root: an s3:// lake needs boto3, which is not installed (hint: pip install 'retail-etl[aws]')" \
        in message


def test_every_problem_is_reported_in_one_pass(scaffold_config: Path) -> None:
    _edit(scaffold_config, '"%Y-%m-%d %H:%M:%S"', '"%Q"')
    _add_rule(scaffold_config, CUSTOM.replace("quantity", "qty"))
    _add_rule(scaffold_config, 'CustomSql "SELECT COUNT(*) FROM elsewhere" < 1')
    message = _message(scaffold_config)
    first, *lines = message.splitlines()
    assert first == "3 problems in the configuration:"
    assert [line.split(": ", 2)[1] for line in lines[:3]] == [
        "sources.sales.columns.sold_at.format", "sources.sales.rules.13", "sources.sales.rules.14"]
    assert "retail-etl doctor" in lines[3]
