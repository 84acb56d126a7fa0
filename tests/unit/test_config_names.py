"""Everything a configuration names is checked at load time: key columns, the reference key, rule
columns, reference columns and the inputs of derived columns, with a did-you-mean."""

from __future__ import annotations

from pathlib import Path

import pytest

from retail_etl.model import reference_key
from retail_etl.config.loader import load_config
from retail_etl.errors import ConfigError


def _edit(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text, old
    path.write_text(text.replace(old, new, 1))


def _message(path: Path) -> str:
    with pytest.raises(ConfigError) as info:
        load_config(path, env={})
    return str(info.value)


def test_a_key_column_the_source_does_not_map_is_an_error(scaffold_config: Path) -> None:
    _edit(scaffold_config, "      line_number: line_no\n", "")
    message = _message(scaffold_config)
    assert "key column 'line_number' is not mapped, derived or defaulted" in message
    assert "never de-duplicated" in message and "sources.sales.key.1" in message


def test_a_misspelt_key_column_gets_a_did_you_mean(scaffold_config: Path) -> None:
    _edit(scaffold_config, "key: [transaction_id, line_number]", "key: [transaction_id, line_numbr]")
    message = _message(scaffold_config)
    assert "key column 'line_numbr' is not canonical" in message and "did you mean 'line_number'?" in message


def test_a_derived_key_column_is_given(scaffold_config: Path) -> None:
    _edit(scaffold_config, "      line_number: line_no\n", "")
    _edit(scaffold_config, "    key: [transaction_id, line_number]", "    derived:\n      line_number: '1'\n"
                           "    key: [transaction_id, line_number]")
    assert load_config(scaffold_config, env={}).sources["sales"].key == ("transaction_id", "line_number")


def test_the_reference_key_is_its_join_column(scaffold_config: Path) -> None:
    _edit(scaffold_config, "    key: [product_id] ", "    key: [product_id, brand] ")
    message = _message(scaffold_config)
    assert "the products reference is joined on product_id, so that is its key" in message
    assert "sources.products.key" in message


def test_a_reference_without_a_declared_key_still_has_one(scaffold_config: Path) -> None:
    _edit(scaffold_config, "    key: [product_id] ", "    # ")
    config = load_config(scaffold_config, env={})
    assert config.sources["products"].key is None
    assert reference_key(config.sources["products"]) == ("product_id",)
    assert reference_key(config.sources["sales"]) is None  # a fact's key is the transform's


def test_key_wins_is_first_or_latest(scaffold_config: Path) -> None:
    _edit(scaffold_config, "    key_wins: first ", "    key_wins: latest ")
    assert load_config(scaffold_config, env={}).sources["products"].key_wins == "latest"
    _edit(scaffold_config, "key_wins: latest", "key_wins: last")
    assert "key_wins" in _message(scaffold_config)


def test_key_wins_without_a_key_is_an_error(scaffold_config: Path) -> None:
    _edit(scaffold_config, "    key: [transaction_id, line_number]", "    key_wins: latest")
    assert "key_wins has no effect without a key" in _message(scaffold_config)


def test_a_rule_on_a_column_the_source_does_not_give_is_an_error(scaffold_config: Path) -> None:
    _edit(scaffold_config, "      customer_id: customer_id\n", "")
    _edit(scaffold_config, '      - rule: IsComplete "transaction_id"\n',
          '      - rule: IsComplete "transaction_id"\n      - rule: IsComplete "customer_id"\n')
    message = _message(scaffold_config)
    assert "rule 'IsComplete \"customer_id\"' uses 'customer_id', which this source does not map" in message


def test_a_misspelt_reference_column_gets_a_did_you_mean(scaffold_config: Path) -> None:
    text = scaffold_config.read_text()
    assert '"products.product_id"' in text
    scaffold_config.write_text(text.replace('"products.product_id"', '"products.product_idd"', 1))
    message = _message(scaffold_config)
    assert "refers to products.product_idd, which is not a canonical products column" in message
    assert "did you mean 'product_id'?" in message


def test_a_derived_column_over_a_column_the_source_does_not_give_is_an_error(scaffold_config: Path) -> None:
    _edit(scaffold_config, "      customer_id: customer_id\n", "")
    _edit(scaffold_config, "      channel: channel\n", "")
    _edit(scaffold_config, "    key: [transaction_id, line_number]",
          "    derived:\n      channel: upper(customer_id)\n    key: [transaction_id, line_number]")
    message = _message(scaffold_config)
    assert "derived column 'channel' uses 'customer_id', which this source does not map" in message


def test_every_problem_is_reported_together(scaffold_config: Path) -> None:
    _edit(scaffold_config, "      line_number: line_no\n", "")
    _edit(scaffold_config, "    key: [product_id] ", "    key: [brand] ")
    message = _message(scaffold_config)
    assert "2 problems in the configuration" in message
    assert "key column 'line_number'" in message and "joined on product_id" in message
