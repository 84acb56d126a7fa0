"""Property: over any product master with repeated ids, the master is conserved (rows read = valid +
quarantined) and unique by key, and the transform conserves sales lines (enriched + transform-stage
quarantine = validated), each enriched with the winning row of its product."""

from __future__ import annotations

import datetime as dt
import tempfile
from pathlib import Path

import duckdb
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from retail_etl.config.loader import load_config
from retail_etl.config.model import Threshold, Thresholds
from retail_etl.engines.duckdb import DuckDBEngine
from retail_etl.jobs.transform import transform
from retail_etl.jobs.validate import InputFile, validate
from retail_etl.pipeline import relations
from retail_etl.quality.ruleset import source_rules
from retail_etl.sources.mapping import plan_source
from tests.conftest import SCAFFOLD

CONFIG = load_config(SCAFFOLD, env={})
NO_GATES = {"thresholds": Thresholds(quarantine_rate=Threshold())}
# Neither IsUnique (the key alone decides) nor ReferentialIntegrity (unknown products reach the transform).
PRODUCT_RULES = tuple(r for r in CONFIG.sources["products"].rules if "IsUnique" not in r.rule)
SALES_RULES = tuple(r for r in CONFIG.sources["sales"].rules if "ReferentialIntegrity" not in r.rule)
SALES = CONFIG.sources["sales"].model_copy(update={**NO_GATES, "rules": SALES_RULES})
IDS = ["P1", "P2", "P3", "P4"]
DAY = dt.date(2024, 1, 5)

master_row = st.tuples(st.sampled_from([*IDS, ""]), st.sampled_from(["Tea", "Teas", "Coffee", ""]),
                       st.sampled_from(["1.00", "2.50", "-1", "x"]))
sale = st.tuples(st.sampled_from(["R1", "R2", "R3"]), st.sampled_from(["1", "2"]), st.sampled_from([*IDS, "P9"]))


def _write(path: Path, header: str, lines: list[str]) -> None:
    path.write_text("\n".join([header, *lines]) + "\n", encoding="utf-8")


def _winners(rows: list[tuple[str, str, str]], wins: str) -> dict[str, tuple[int, str]]:
    """The expected winner (line, name) of each product id among the rows that pass every rule."""
    valid = [(line, pid, name) for line, (pid, name, price) in enumerate(rows, start=2)
             if pid and price in ("1.00", "2.50")]
    out: dict[str, tuple[int, str]] = {}
    for line, pid, name in valid if wins == "first" else reversed(valid):
        out.setdefault(pid, (line, name))
    return out


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(master_row, max_size=12), st.lists(sale, min_size=1, max_size=15),
       st.sampled_from(["first", "latest"]))
def test_repeated_ids_are_quarantined_and_lines_conserved(
    master: list[tuple[str, str, str]], sales: list[tuple[str, str, str]], wins: str
) -> None:
    products = CONFIG.sources["products"].model_copy(update={**NO_GATES, "rules": PRODUCT_RULES, "key_wins": wins})
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        _write(folder / "products.csv", "sku,name,category,subcategory,brand,unit_cost,list_price",
               [f"{pid},{name},Drinks,Hot,Brand,0.50,{price}" for pid, name, price in master])
        _write(folder / "sales.csv",
               "receipt_id,line_no,sold_at,store,sku,customer_id,qty,unit_price,discount,currency,channel,"
               "payment_method",
               [f"{t},{n},{DAY} 10:00:00,S1,{pid},,1,2.00,0.00,EUR,store,card" for t, n, pid in sales])
        con = duckdb.connect()
        engine = DuckDBEngine(con)
        checked = validate(engine, plan_source("products", products), products, source_rules(products),
                           [InputFile(folder / "products.csv", "products.csv")], run_id="r", tables={})
        con.execute(f"CREATE TABLE master AS {checked.valid_query}")
        master_quarantine = con.execute(f"SELECT count(*) FROM ({checked.quarantine_query})").fetchone()[0]
        lines = con.execute(f"SELECT * FROM ({checked.valid_query})").fetchall()
        kept = dict(con.execute("SELECT product_id, (source_line, product_name) FROM master").fetchall())

        validated = validate(engine, plan_source("sales", SALES), SALES, source_rules(SALES),
                             [InputFile(folder / "sales.csv", "sales.csv")], run_id="r",
                             tables={"products": "master"}, partition_by=("sale_date",))
        con.execute(f"CREATE TABLE validated AS {validated.valid_query}")
        enriched, quarantined = transform(
            engine, validated_after="validated", dates=relations.dates(engine, [DAY]), products="master",
            key=SALES.key, returns=True, unknown_products="quarantine", run_id="r", every_date=True)
        n_validated = con.execute("SELECT count(*) FROM validated").fetchone()[0]
        out = con.execute(f"SELECT source_line, product_id, product_name FROM {enriched}").fetchall()
        n_late = con.execute(f"SELECT count(*) FROM {quarantined}").fetchone()[0]

    assert checked.rows_read == len(master) == checked.rows_valid + checked.rows_quarantined
    assert master_quarantine == checked.rows_quarantined
    assert len(lines) == len(kept), "a product id is in the master twice"
    expected = _winners(master, wins)
    assert {pid: (int(line), name or None) for pid, (line, name) in kept.items()} == {
        pid: (line, name or None) for pid, (line, name) in expected.items()}
    assert len(out) + n_late == n_validated
    assert len({line for line, _, _ in out}) == len(out), "a sales line was enriched twice"
    assert all(product in expected and name == (expected[product][1] or None) for _, product, name in out)
