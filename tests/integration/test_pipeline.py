"""End to end on DuckDB and real files: conservation, figures against an independent oracle, incrementality."""

from __future__ import annotations

import datetime as dt
import shutil
from decimal import Decimal
from pathlib import Path

import pytest

from retail_etl.config.loader import load_config
from retail_etl.errors import QualityGateError, SourceError
from retail_etl.pipeline import Lake, RunResult, run
from retail_etl.query import run_query
from retail_etl.scaffold import create_project
from tests.integration import oracle

ROWS = 4000

MARTS = ("daily_sales", "product_daily", "category_daily", "store_daily")
TABLES = ("sales_validated", "sales_quarantine", "sales_enriched", "products", *MARTS)
VOLATILE = {"run_id", "quarantined_at"}


def q(project: Path, sql: str) -> list[dict]:
    return run_query(load_config(project / "retail-etl.yaml", env={}), sql).to_pylist()


def scalar(project: Path, sql: str):
    (row,) = q(project, sql)
    (value,) = row.values()
    return value


def data_lines(path: Path) -> int:
    return sum(1 for line in path.read_bytes().split(b"\n")[1:] if line.strip())


def snapshots(project: Path) -> dict[str, int]:
    lake = Lake(load_config(project / "retail-etl.yaml", env={}))
    return {name: len(lake.catalog.load(name).snapshots()) for name in lake.catalog.tables()}


def table_rows(project: Path, table: str) -> list[tuple]:
    rows = q(project, f"SELECT * FROM retail_etl.{table}")
    cleaned = [tuple((k, v) for k, v in sorted(r.items()) if k not in VOLATILE) for r in rows]
    return sorted(cleaned, key=repr)


@pytest.fixture(scope="module")
def sample(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A project from the scaffold, with dirtier data than the default, run once."""
    project = tmp_path_factory.mktemp("sample") / "p"
    create_project(project, rows=100)
    from retail_etl.sample.generator import generate

    generate(project / "data", ROWS, 20, seed=7, dirty_rate=0.06)
    result = run(load_config(project / "retail-etl.yaml", env={}))
    assert result.sources and result.transform is not None
    RESULTS[project] = result
    return project


RESULTS: dict[Path, RunResult] = {}


def test_rows_are_conserved(sample: Path) -> None:
    lines = data_lines(sample / "data" / "sales.csv")
    valid = scalar(sample, "SELECT count(*) FROM retail_etl.sales_validated")
    early = scalar(sample, "SELECT count(*) FROM retail_etl.sales_quarantine WHERE stage IN ('read', 'validate')")
    late = scalar(sample, "SELECT count(*) FROM retail_etl.sales_quarantine WHERE stage = 'transform'")
    enriched = scalar(sample, "SELECT count(*) FROM retail_etl.sales_enriched")
    assert valid + early == lines
    assert enriched + late == valid
    assert 0 < early < lines * 0.2
    runs = q(sample, "SELECT * FROM retail_etl.quality_runs WHERE source = 'sales'")
    assert runs[0]["rows_read"] == lines and runs[0]["rows_valid"] == valid


def test_every_quarantine_row_names_file_line_and_rule(sample: Path) -> None:
    rows = q(sample, "SELECT source_file, source_line, failed_rules, messages, stage FROM retail_etl.sales_quarantine")
    assert rows
    for r in rows:
        assert r["source_file"] == "sales.csv"
        assert r["source_line"] >= 2
        assert r["failed_rules"] and len(r["messages"]) == len(r["failed_rules"])
    lines = [r["source_line"] for r in rows if r["stage"] != "transform"]
    assert len(lines) == len(set(lines)), "a line is quarantined once"


def test_each_kind_of_dirt_lands_on_its_rule(sample: Path) -> None:
    """The generator's own tally of dirt equals what the rules caught."""
    from retail_etl.sample.generator import generate

    dirt = generate(sample.parent / "again", ROWS, 20, seed=7, dirty_rate=0.06).dirt

    def failed(rule: str) -> int:
        return scalar(sample, f"SELECT count(*) FROM retail_etl.sales_quarantine WHERE list_contains(failed_rules, '{rule}')")

    assert failed("Read.malformed") == dirt.malformed_line
    assert failed("IsComplete.product_id") == dirt.missing_product
    assert failed("ReferentialIntegrity.product_id") == dirt.unknown_product
    assert failed("ColumnValues.quantity") == dirt.zero_quantity
    assert failed("Parse.unit_price") == dirt.bad_price
    assert failed("Parse.sold_at") == dirt.bad_date
    assert failed("ColumnValues.sale_date") == dirt.future_date
    assert failed("ColumnValues.payment_method") == dirt.unknown_payment
    assert failed("Transform.duplicate") == dirt.duplicate_line


def test_transform_figures_agree_with_the_tables(sample: Path) -> None:
    """The run's transform figures and its quality_metrics rows count what the tables hold."""
    t = RESULTS[sample].transform
    assert t is not None
    validated = scalar(sample, "SELECT count(*) FROM retail_etl.sales_validated")
    enriched = scalar(sample, "SELECT count(*) FROM retail_etl.sales_enriched")
    late = {r["rule"]: r["n"] for r in q(sample, "SELECT failed_rules[1] AS rule, count(*) AS n "
                                            "FROM retail_etl.sales_quarantine WHERE stage = 'transform' GROUP BY 1")}
    assert late["Transform.duplicate"] > 0
    assert (t.lines_in, t.enriched, t.duplicates, t.unknown_products) == (
        validated, enriched, late["Transform.duplicate"], late.get("Transform.unknown_product", 0))
    metrics = {r["rule_id"]: r for r in q(sample, "SELECT * FROM retail_etl.quality_metrics WHERE level = 'transform'")}
    assert metrics["Transform.duplicate"]["rows_checked"] == validated
    assert metrics["Transform.duplicate"]["rows_failed"] == late["Transform.duplicate"]
    assert metrics["Transform.unknown_product"]["rows_failed"] == t.unknown_products


def test_figures_match_an_independent_oracle(sample: Path) -> None:
    products = oracle.load_products(sample / "data" / "products.csv")
    lines, read = oracle.sales_lines([sample / "data" / "sales.csv"], products, dt.date.today())
    assert read == data_lines(sample / "data" / "sales.csv")
    expected = oracle.daily(lines)
    actual = {r["sale_date"]: r for r in q(sample, "SELECT * FROM retail_etl.daily_sales")}
    assert set(actual) == set(expected)
    for day, exp_row in expected.items():
        got = actual[day]
        for column, value in exp_row.items():
            assert got[column] == value, (day, column)
    assert scalar(sample, "SELECT count(*) FROM retail_etl.sales_enriched") == len(lines)
    assert scalar(sample, "SELECT sum(net_amount) FROM retail_etl.sales_enriched") == sum(
        (ln["net_amount"] for ln in lines), Decimal(0)
    )


def test_marts_sum_to_daily_sales(sample: Path) -> None:
    additive = ["lines", "units_sold", "units_returned", "gross_revenue", "discounts", "returns_amount",
                "net_revenue", "cost", "margin"]
    for mart in ("category_daily", "store_daily"):
        sums = ", ".join(f"sum({c}) AS {c}" for c in additive)
        diff = q(sample, f"""
            SELECT d.sale_date FROM retail_etl.daily_sales d
            JOIN (SELECT sale_date, {sums} FROM retail_etl.{mart} GROUP BY sale_date) m USING (sale_date)
            WHERE {" OR ".join(f"d.{c} <> m.{c}" for c in additive)}""")
        assert diff == [], mart
    diff = q(sample, """
        SELECT d.sale_date FROM retail_etl.daily_sales d
        JOIN (SELECT sale_date, sum(units) u, sum(net_revenue) n, sum(margin) m
              FROM retail_etl.product_daily GROUP BY sale_date) p USING (sale_date)
        WHERE p.n <> d.net_revenue OR p.m <> d.margin OR p.u <> d.units_sold - d.units_returned""")
    assert diff == []
    assert scalar(sample, "SELECT count(*) FROM retail_etl.daily_sales") == scalar(
        sample, "SELECT count(DISTINCT sale_date) FROM retail_etl.sales_enriched")
    assert scalar(sample, "SELECT count(*) FROM retail_etl.daily_sales WHERE transactions <> "
                          "(SELECT count(DISTINCT transaction_id) FROM retail_etl.sales_enriched e "
                          "WHERE e.sale_date = daily_sales.sale_date)") == 0
    top = q(sample, "SELECT product_id, revenue_rank FROM retail_etl.product_daily "
                    "QUALIFY net_revenue = max(net_revenue) OVER (PARTITION BY sale_date)")
    assert top and all(r["revenue_rank"] == 1 for r in top)


def test_second_run_adds_nothing(sample: Path) -> None:
    before = snapshots(sample)
    result = run(load_config(sample / "retail-etl.yaml", env={}))
    assert result.sources == [] and result.transform is None
    assert snapshots(sample) == before


def test_one_more_file_processes_only_that_file(tmp_path: Path) -> None:
    project = tmp_path / "p"
    create_project(project, rows=600)
    run(load_config(project / "retail-etl.yaml", env={}))
    extra = tmp_path / "sales_more.csv"
    lines = (project / "data" / "sales.csv").read_bytes().split(b"\n")
    # the same receipts a month later, with new receipt ids
    moved = [lines[0]] + [ln.replace(b"R", b"X", 1).replace(b"2024-01-", b"2024-02-", 1) for ln in lines[1:50]]
    extra.write_bytes(b"\n".join(moved) + b"\n")
    config = load_config(project / "retail-etl.yaml", env={})
    Lake(config).raw.ingest("sales", [extra])
    result = run(config)
    (sales,) = [s for s in result.sources if s.source == "sales"]
    assert sales.files == ["sales_more.csv"] and sales.rows_read == 49
    assert scalar(project, "SELECT count(*) FROM retail_etl.sales_validated WHERE source_file = 'sales_more.csv'") \
        == sales.rows_valid
    assert all(d.month == 2 for d in result.dates), "only the new file's dates are re-derived"


def _split(source: Path, folder: Path, parts: int = 3) -> list[Path]:
    header, *body = source.read_bytes().split(b"\n")
    body = [b for b in body if b]
    size = -(-len(body) // parts)
    out = []
    for i in range(parts):
        path = folder / f"sales_{i + 1}.csv"
        path.write_bytes(b"\n".join([header, *body[i * size:(i + 1) * size]]) + b"\n")
        out.append(path)
    return out


def _project(tmp: Path, name: str, seed_files: list[Path]) -> Path:
    project = tmp / name
    create_project(project, rows=10)
    (project / "data" / "sales.csv").unlink()
    for f in seed_files:
        shutil.copy(f, project / "data" / f.name)
    return project


def test_batches_equal_one_run_and_a_declared_correction_replaces(tmp_path: Path) -> None:
    from retail_etl.sample.generator import generate

    gen = generate(tmp_path / "gen", 1500, 12, seed=11, dirty_rate=0.05)
    pieces = _split(gen.sales_path, tmp_path)
    for p in (tmp_path / "gen").glob("products.csv"):
        products = p

    whole = _project(tmp_path, "whole", pieces)
    shutil.copy(products, whole / "data" / "products.csv")
    run(load_config(whole / "retail-etl.yaml", env={}))

    inc = _project(tmp_path, "inc", [])
    shutil.copy(products, inc / "data" / "products.csv")
    for piece in pieces:
        shutil.copy(piece, inc / "data" / piece.name)
        run(load_config(inc / "retail-etl.yaml", env={}))
    for table in TABLES:
        assert table_rows(inc, table) == table_rows(whole, table), table

    # A corrected copy of the middle file: drop some lines, change quantities, move a day. The
    # source declares that a re-delivered name replaces its earlier deliveries.
    replace = {"RETAIL_ETL__SOURCES__SALES__DELIVERIES": "replace"}
    text = pieces[1].read_bytes().split(b"\n")
    modified = [text[0]] + [ln.replace(b",2,", b",3,", 1).replace(b"2024-01-05", b"2024-01-25")
                            for ln in text[1:] if ln and not ln.endswith(b"cash")]
    changed = tmp_path / "changed" / "sales_2.csv"
    changed.parent.mkdir()
    changed.write_bytes(b"\n".join(modified) + b"\n")
    shutil.copy(changed, inc / "data" / "sales_2.csv")
    result = run(load_config(inc / "retail-etl.yaml", env=replace))
    (replacement,) = result.replacements
    assert (replacement.file, replacement.rows_removed, replacement.rows_added) == (
        "sales_2.csv", data_lines(pieces[1]), data_lines(changed))

    # A fresh lake given the same deliveries in the same order, the correction last.
    fresh = _project(tmp_path, "fresh", [pieces[0], pieces[2]])
    shutil.copy(products, fresh / "data" / "products.csv")
    run(load_config(fresh / "retail-etl.yaml", env=replace))
    shutil.copy(changed, fresh / "data" / "sales_2.csv")
    run(load_config(fresh / "retail-etl.yaml", env=replace))
    for table in TABLES:  # delivery ids differ: the fresh lake never had the first sales_2.csv
        assert _without_delivery(table_rows(inc, table)) == _without_delivery(table_rows(fresh, table)), table


def _without_delivery(rows: list[tuple]) -> list[tuple]:
    return sorted((tuple(kv for kv in r if kv[0] != "delivery_id") for r in rows), key=repr)


def _broken_project(tmp_path: Path, body: bytes) -> Path:
    project = tmp_path / "p"
    create_project(project, rows=200)
    sales = project / "data" / "sales.csv"
    lines = sales.read_bytes().split(b"\n")
    sales.write_bytes(b"\n".join(lines[:40] + [body] + lines[40:]))
    return project


@pytest.mark.parametrize(
    ("broken", "reason"),
    [
        (b'"R9999,1,2024-01-02 10:00:00,S001,P00001,,1,2.00,0.00,EUR,store,card', "unterminated quote"),
        (b"R9999,1,2024-01-02 10:00:00,S001,P00001,1,2.00,0.00,EUR,store,card", "wrong field count"),
        (b"R9999,1,2024-01-02 10:00:00,S001,P00001,C\xe9,1,2.00,0.00,EUR,store,card", "invalid byte"),
    ],
)
def test_broken_line_is_quarantined_and_the_rest_goes_through(tmp_path: Path, broken: bytes, reason: str) -> None:
    project = _broken_project(tmp_path, broken)
    run(load_config(project / "retail-etl.yaml", env={}))
    rows = q(project, "SELECT source_line, messages, raw_line FROM retail_etl.sales_quarantine WHERE stage = 'read'")
    assert [r["source_line"] for r in rows] == [41]
    assert reason in rows[0]["messages"][0]
    assert "R9999" in rows[0]["raw_line"]
    lines = data_lines(project / "data" / "sales.csv")
    total = scalar(project, "SELECT count(*) FROM retail_etl.sales_validated") + scalar(
        project, "SELECT count(*) FROM retail_etl.sales_quarantine WHERE stage <> 'transform'")
    assert total == lines
    assert scalar(project, "SELECT max(source_line) FROM retail_etl.sales_validated") > 41


def test_quality_gate_commits_nothing(tmp_path: Path) -> None:
    project = tmp_path / "p"
    create_project(project, rows=300)
    sales = project / "data" / "sales.csv"
    sales.write_bytes(sales.read_bytes().replace(b",card", b",bitcoin"))
    with pytest.raises(QualityGateError, match="above the fail level"):
        run(load_config(project / "retail-etl.yaml", env={}))
    quality = {"quality_runs", "quality_metrics"}  # the failed run's figures, committed on their own
    assert {t for t, n in snapshots(project).items() if n} == quality
    assert {p.parent.parent.name for p in (project / "lake").glob("processed/*/data/*")} <= quality
    assert [r["status"] for r in q(project, "SELECT status FROM retail_etl.quality_runs")] == ["failed"]


def test_missing_column_fails_before_any_data_is_touched(tmp_path: Path) -> None:
    project = tmp_path / "p"
    create_project(project, rows=100)
    sales = project / "data" / "sales.csv"
    sales.write_bytes(sales.read_bytes().replace(b"sku,", b"article,", 1))
    with pytest.raises(SourceError, match="missing column.*'sku'"):
        run(load_config(project / "retail-etl.yaml", env={}))
    assert snapshots(project) == {}


def test_two_sales_sources_get_their_own_transform_figures(tmp_path: Path) -> None:
    """Per source: duplicates and unknown products (a source without the referential rule lets
    them through to transform) counted as the generator planted them."""
    import yaml

    from retail_etl.sample.generator import generate

    project = tmp_path / "p"
    create_project(project, rows=10)
    pos = generate(tmp_path / "pos", 3000, 10, seed=7, dirty_rate=0.06)
    web = generate(tmp_path / "web", 2000, 10, seed=7, dirty_rate=0.06)  # same products (same seed and count)
    shutil.copyfile(pos.products_path, project / "data" / "products.csv")
    shutil.copyfile(pos.sales_path, project / "data" / "sales.csv")
    (project / "web").mkdir()
    shutil.copyfile(web.sales_path, project / "web" / "orders.csv")
    settings = yaml.safe_load((project / "retail-etl.yaml").read_text())
    web_source = {**settings["sources"]["sales"], "path": "web/*.csv"}
    web_source["rules"] = [r for r in web_source["rules"] if not r["rule"].startswith("ReferentialIntegrity")]
    settings["sources"]["web"] = web_source
    (project / "retail-etl.yaml").write_text(yaml.safe_dump(settings))

    result = run(load_config(project / "retail-etl.yaml", env={}))

    assert web.dirt.unknown_product > 0 and pos.dirt.duplicate_line > 0 and web.dirt.duplicate_line > 0
    expected = {"sales": (pos.dirt.duplicate_line, 0), "web": (web.dirt.duplicate_line, web.dirt.unknown_product)}
    metrics = q(project, "SELECT source, rule_id, rows_checked, rows_failed FROM retail_etl.quality_metrics "
                         "WHERE level = 'transform'")
    for source, (dups, unknown) in expected.items():
        validated = scalar(project, f"SELECT count(*) FROM retail_etl.sales_validated WHERE source = '{source}'")
        enriched = scalar(project, f"SELECT count(*) FROM retail_etl.sales_enriched WHERE source = '{source}'")
        assert enriched == validated - dups - unknown
        got = {m["rule_id"]: (m["rows_checked"], m["rows_failed"]) for m in metrics if m["source"] == source}
        assert got == {"Transform.duplicate": (validated, dups), "Transform.unknown_product": (validated, unknown)}
    t = result.transform
    assert t is not None
    total_validated = scalar(project, "SELECT count(*) FROM retail_etl.sales_validated")
    assert (t.lines_in, t.duplicates, t.unknown_products) == (
        total_validated, pos.dirt.duplicate_line + web.dirt.duplicate_line, web.dirt.unknown_product)
    assert t.enriched == scalar(project, "SELECT count(*) FROM retail_etl.sales_enriched")


def test_a_key_repeated_on_a_later_date_is_a_duplicate_in_one_run_and_in_batches(tmp_path: Path) -> None:
    """The first run ranks every line (all dates are re-derived); a later batch ranks only the
    keys it shares with earlier lines. Both must keep the first line of a key repeated days later."""
    from retail_etl.sample.generator import generate

    gen = generate(tmp_path / "gen", 900, 9, seed=5, dirty_rate=0.0)
    pieces = _split(gen.sales_path, tmp_path)  # lines are in time order: the pieces hold different days
    first = pieces[0].read_bytes().split(b"\n")[1].split(b",")
    last = pieces[2].read_bytes().split(b"\n")[-2].split(b",")
    repeat = b",".join([*first[:2], last[2], *first[3:]])  # key and fields of the first line, a later time
    pieces[2].write_bytes(pieces[2].read_bytes() + repeat + b"\n")

    whole = _project(tmp_path, "whole", pieces)
    inc = _project(tmp_path, "inc", [])
    for project in (whole, inc):
        shutil.copy(gen.products_path, project / "data" / "products.csv")
    run(load_config(whole / "retail-etl.yaml", env={}))
    for piece in pieces:
        shutil.copy(piece, inc / "data" / piece.name)
        result = run(load_config(inc / "retail-etl.yaml", env={}))
    assert result.transform is not None and result.transform.duplicates == 1
    for project in (whole, inc):
        (dup,) = q(project, "SELECT source_file, source_line, messages FROM retail_etl.sales_quarantine "
                            "WHERE stage = 'transform'")
        assert dup["source_file"] == "sales_3.csv" and "sales_1.csv:2" in dup["messages"][0]
    for table in TABLES:
        assert table_rows(inc, table) == table_rows(whole, table), table
