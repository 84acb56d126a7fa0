"""Configuration loading: validation, locations in messages, environment overrides."""

from __future__ import annotations

from pathlib import Path

import pytest

from retail_etl.config.loader import load_config
from retail_etl.errors import ConfigError


def _edit(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text, old
    path.write_text(text.replace(old, new, 1))


def _line_of(path: Path, needle: str) -> int:
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        if needle in line:
            return number
    raise AssertionError(needle)


def test_shipped_config_loads(scaffold_config: Path) -> None:
    config = load_config(scaffold_config, env={})
    assert set(config.sources) == {"sales", "products"}
    assert config.sources["sales"].column_spec("quantity").column == "qty"
    assert config.lake_root() == str((scaffold_config.parent / "lake").resolve())


def test_unknown_key_names_file_line_and_suggestion(scaffold_config: Path) -> None:
    _edit(scaffold_config, "  memory_limit: 1.5GB", "  memory_limt: 1.5GB")
    with pytest.raises(ConfigError) as info:
        load_config(scaffold_config, env={})
    message = str(info.value)
    line = _line_of(scaffold_config, "memory_limt")
    assert f"retail-etl.yaml:{line}: engine.memory_limt" in message
    assert "did you mean 'memory_limit'" in message


def test_unknown_canonical_column_in_mapping(scaffold_config: Path) -> None:
    _edit(scaffold_config, "      quantity: qty", "      quantiy: qty")
    with pytest.raises(ConfigError) as info:
        load_config(scaffold_config, env={})
    message = str(info.value)
    assert "sources.sales.columns.quantiy" in message
    assert f"retail-etl.yaml:{_line_of(scaffold_config, 'quantiy: qty')}" in message
    assert "did you mean 'quantity'" in message


def test_required_column_missing_from_mapping(scaffold_config: Path) -> None:
    _edit(scaffold_config, "      product_id: sku\n      customer_id", "      customer_id")
    with pytest.raises(ConfigError) as info:
        load_config(scaffold_config, env={})
    assert "sources.sales.columns.product_id" in str(info.value)
    assert "required canonical column 'product_id'" in str(info.value)


def test_unparseable_rule_names_its_place(scaffold_config: Path) -> None:
    _edit(scaffold_config, 'ColumnValues "quantity" != 0', 'ColumnValues "quantity" !! 0')
    with pytest.raises(ConfigError) as info:
        load_config(scaffold_config, env={})
    message = str(info.value)
    assert "sources.sales.rules." in message
    assert f"retail-etl.yaml:{_line_of(scaffold_config, '!! 0')}" in message


def test_rule_on_unknown_column(scaffold_config: Path) -> None:
    _edit(scaffold_config, 'IsComplete "store_id"', 'IsComplete "store"')
    with pytest.raises(ConfigError, match="'store', which is not a canonical sales column"):
        load_config(scaffold_config, env={})


def test_dataset_rule_cannot_quarantine(scaffold_config: Path) -> None:
    _edit(scaffold_config, "      - rule: RowCount > 0\n        severity: fail", "      - rule: RowCount > 0")
    with pytest.raises(ConfigError, match="dataset-level rule"):
        load_config(scaffold_config, env={})


def test_bad_derived_expression(scaffold_config: Path) -> None:
    _edit(scaffold_config, "    standardize:               # applied", "    derived:\n      net_amount: quantity * * unit_price - discount_amount\n    standardize:  # applied")
    with pytest.raises(ConfigError, match="sources.sales.derived.net_amount"):
        load_config(scaffold_config, env={})


def test_derived_expression_over_unknown_column(scaffold_config: Path) -> None:
    _edit(scaffold_config, "    standardize:               # applied", "    derived:\n      net_amount: qty * unit_price\n    standardize:  # applied")
    with pytest.raises(ConfigError, match="'qty', which is not a canonical column"):
        load_config(scaffold_config, env={})


def test_env_override(scaffold_config: Path) -> None:
    config = load_config(
        scaffold_config,
        env={"RETAIL_ETL__LAKE__ROOT": "/tmp/elsewhere", "RETAIL_ETL__ENGINE__THREADS": "1",
             "RETAIL_ETL__SOURCES__SALES__CSV__DELIMITER": ";"},
    )
    assert config.lake_root() == "/tmp/elsewhere"
    assert config.engine.threads == 1
    assert config.sources["sales"].csv.delimiter == ";"


def test_env_override_is_validated(scaffold_config: Path) -> None:
    with pytest.raises(ConfigError, match="engine.threads"):
        load_config(scaffold_config, env={"RETAIL_ETL__ENGINE__THREADS": "many"})


def test_invalid_yaml(tmp_path: Path) -> None:
    path = tmp_path / "retail-etl.yaml"
    path.write_text("lake:\n  root: [unclosed\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(path, env={})


def test_missing_config_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="retail-etl.yaml does not exist"):
        load_config(tmp_path, env={})


def test_a_named_config_that_does_not_exist_never_falls_back_to_a_parent(scaffold_config: Path) -> None:
    inner = scaffold_config.parent / "inner"
    inner.mkdir()
    for named in (inner / "missing.yaml", inner):
        with pytest.raises(ConfigError, match=f"{named}.* does not exist|{named} does not exist"):
            load_config(named, env={})


def test_unbalanced_derived_expression(scaffold_config: Path) -> None:
    _edit(scaffold_config, "    standardize:               # applied", "    derived:\n      net_amount: quantity * (unit_price\n    standardize:  # applied")
    with pytest.raises(ConfigError, match="sources.sales.derived.net_amount.*cannot parse"):
        load_config(scaffold_config, env={})
