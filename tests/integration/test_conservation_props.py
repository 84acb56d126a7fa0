"""Property: every input line of a dirty CSV ends in exactly one of validated or quarantine."""

from __future__ import annotations

import tempfile
from pathlib import Path

import duckdb
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from retail_etl.config.loader import load_config
from retail_etl.config.model import Threshold, Thresholds
from retail_etl.engines.duckdb import DuckDBEngine
from retail_etl.jobs.validate import InputFile, validate
from retail_etl.quality.ruleset import source_rules
from retail_etl.sources.mapping import plan_source
from tests.conftest import SCAFFOLD

CONFIG = load_config(SCAFFOLD, env={})
# The shipped rules, without the gates that stop a run (they are tested elsewhere).
SALES = CONFIG.sources["sales"].model_copy(update={"thresholds": Thresholds(quarantine_rate=Threshold())})
PLAN = plan_source("sales", SALES)
RULES = [r for r in source_rules(SALES) if r.severity != "fail"]

field = st.sampled_from(["R1", "R2", " r3 ", "", "P00001", "P99999", "2024-01-05 10:00:00", "2099-01-01 00:00:00",
                         "31/02/2024", "1", "-2", "0", "abc", "3.50", "1e3", "card", "CASH", "bitcoin", "store",
                         "EUR", '"quoted, comma"', '"multi\nline"', "caf\xe9", '"unbalanced', "x;y"])
good = st.builds(lambda *f: ",".join(f), st.just("R1"), st.sampled_from(["1", "2"]),
                 st.just("2024-01-05 10:00:00"), st.just("S001"), st.just("P00001"), st.just(""), st.just("1"),
                 st.just("2.00"), st.just("0.00"), st.just("EUR"), st.just("store"), st.just("card"))
line = st.one_of(good, st.lists(field, min_size=10, max_size=14).map(",".join), st.just(""))


def _physical_lines(data: bytes) -> list[int]:
    """1-based numbers of the non-blank lines after the header."""
    return [i for i, ln in enumerate(data.split(b"\n"), start=1) if i > 1 and ln.strip()]


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(line, min_size=0, max_size=25), st.booleans())
def test_every_line_is_accounted_for_once(lines: list[str], crlf: bool) -> None:
    header = "receipt_id,line_no,sold_at,store,sku,customer_id,qty,unit_price,discount,currency,channel,payment_method"
    newline = "\r\n" if crlf else "\n"
    data = (newline.join([header, *lines]) + newline).encode("utf-8", "surrogateescape").replace(
        "\xe9".encode(), b"\xe9")
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "sales.csv"
        path.write_bytes(data)
        con = duckdb.connect()
        con.execute("CREATE TABLE products AS SELECT 'P00001' AS product_id")
        result = validate(DuckDBEngine(con), PLAN, SALES, RULES, [InputFile(path, "sales.csv")], run_id="r",
                          tables={"products": "products"}, partition_by=("sale_date",))
        valid = [r[0] for r in con.execute(f"SELECT source_line FROM ({result.valid_query})").fetchall()]
        quarantined = [r[0] for r in con.execute(f"SELECT source_line FROM ({result.quarantine_query})").fetchall()]
    starts = sorted(valid + quarantined)
    assert len(starts) == len(set(starts)), "a line landed twice"
    assert result.rows_read == len(starts) == result.rows_valid + result.rows_quarantined
    physical = _physical_lines(data)
    assert set(starts) <= set(physical)
    # Lines not starting a record are the continuation lines of quoted multi-line records.
    continuation = set(physical) - set(starts)
    for number in continuation:
        assert any(s < number for s in starts)
    if '"' not in data.decode("utf-8", "replace"):
        assert starts == physical
