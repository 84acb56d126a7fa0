"""A reference's key is enforced before any join; every transform conserves lines; quarantined lines
keep their original record."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from retail_etl.config.loader import load_config
from retail_etl.errors import ConservationError
from retail_etl.pipeline import Lake, run
from retail_etl.query import run_query
from retail_etl.scaffold import create_project

PRODUCT = "P00008"


def q(project: Path, sql: str) -> list[dict]:
    return run_query(load_config(project / "retail-etl.yaml", env={}), sql).to_pylist()


def count(project: Path, sql: str) -> int:
    (row,) = q(project, sql)
    return next(iter(row.values()))


def csv_rows(path: Path) -> dict[int, dict[str, str]]:
    """Fields of each physical line of a CSV that holds one whole record, by line number."""
    lines = path.read_bytes().decode("utf-8", "replace").split("\n")
    header = next(csv.reader(lines[:1]))
    rows = {}
    for number, line in enumerate(lines[1:], start=2):
        fields = next(csv.reader([line]), [])
        if len(fields) == len(header):
            rows[number] = dict(zip(header, fields, strict=True))
    return rows


def repeat_product(project: Path, names: list[str]) -> list[int]:
    """Append a row for ``PRODUCT`` under each of ``names`` to the master; returns the line numbers of
    every row of ``PRODUCT``, in file order."""
    path = project / "data" / "products.csv"
    rows = list(csv.reader(path.open(newline="", encoding="utf-8")))
    original = next(r for r in rows if r[0] == PRODUCT)
    rows += [[PRODUCT, name, *original[2:]] for name in names]
    with open(path, "w", newline="", encoding="utf-8") as fh:
        csv.writer(fh, lineterminator="\n").writerows(rows)
    return [i for i, r in enumerate(rows, start=1) if r[0] == PRODUCT]


def project_with_master(tmp_path: Path, key_wins: str | None) -> tuple[Path, list[int]]:
    """The scaffold's project, its master repeating PRODUCT under three names, without the IsUnique
    rule (so only the key decides) and with ``key_wins`` as given."""
    project = tmp_path / "p"
    create_project(project, rows=3000)
    config = project / "retail-etl.yaml"
    text = config.read_text()
    text = text.replace('      - rule: IsUnique "product_id"\n', "", 1)
    assert "    key_wins: first " in text
    text = text.replace("    key_wins: first ", "" if key_wins is None else f"    key_wins: {key_wins} ", 1)
    config.write_text(text)
    return project, repeat_product(project, ["Second name", "Third name"])


@pytest.mark.parametrize("key_wins", [None, "first", "latest"])
def test_a_repeated_product_id_never_multiplies_sales(tmp_path: Path, key_wins: str | None) -> None:
    project, lines = project_with_master(tmp_path, key_wins)
    result = run(load_config(project / "retail-etl.yaml", env={}))
    wins = key_wins or "first"
    winner = lines[0] if wins == "first" else lines[-1]
    master = csv_rows(project / "data" / "products.csv")

    # The master: one row per product_id, the winner's; the others in products_quarantine, with why.
    assert count(project, f"SELECT count(*) FROM retail_etl.products WHERE product_id = '{PRODUCT}'") == 1
    (kept,) = q(project, f"SELECT product_name, source_line FROM retail_etl.products WHERE product_id = '{PRODUCT}'")
    assert kept == {"product_name": master[winner]["name"], "source_line": winner}
    quarantined = q(project, "SELECT source_line, stage, failed_rules, messages, record "
                             "FROM retail_etl.products_quarantine ORDER BY source_line")
    assert [r["source_line"] for r in quarantined] == [n for n in lines if n != winner]
    for row in quarantined:
        assert row["stage"] == "validate" and row["failed_rules"] == ["Key.duplicate"]
        assert row["messages"] == [
            f"product_id '{PRODUCT}' occurs 3 times in products.csv; the {wins} row (line {winner}) wins"]
        assert json.loads(row["record"]) == master[row["source_line"]]

    # Conservation of the master: rows read = valid + quarantined.
    products = next(s for s in result.sources if s.source == "products")
    assert products.rows_read == len(master)
    assert products.rows_valid == count(project, "SELECT count(*) FROM retail_etl.products") == len(master) - 2
    assert products.rows_quarantined == 2
    (check,) = q(project, "SELECT rows_failed, passed FROM retail_etl.quality_metrics "
                          "WHERE source = 'products' AND rule_id = 'Key.duplicate'")
    assert check == {"rows_failed": 2, "passed": False}

    # Sales: each validated line once, enriched or quarantined; the product's lines enriched once each.
    validated = count(project, "SELECT count(*) FROM retail_etl.sales_validated")
    enriched = count(project, "SELECT count(*) FROM retail_etl.sales_enriched")
    late = count(project, "SELECT count(*) FROM retail_etl.sales_quarantine WHERE stage = 'transform'")
    assert enriched + late == validated
    assert count(project, "SELECT count(*) FROM (SELECT source_file, source_line FROM retail_etl.sales_enriched "
                          "GROUP BY ALL HAVING count(*) > 1)") == 0
    sold = count(project, f"SELECT count(*) FROM retail_etl.sales_validated WHERE product_id = '{PRODUCT}'")
    assert sold > 0
    names = q(project, f"SELECT product_name, count(*) AS n FROM retail_etl.sales_enriched "
                       f"WHERE product_id = '{PRODUCT}' GROUP BY ALL")
    late_product = count(project, "SELECT count(*) FROM retail_etl.sales_quarantine q "
                                  "JOIN retail_etl.sales_validated v USING (source_file, source_line) "
                                  f"WHERE q.stage = 'transform' AND v.product_id = '{PRODUCT}'")
    assert names == [{"product_name": master[winner]["name"], "n": sold - late_product}]


def test_transform_quarantine_keeps_the_original_record(tmp_path: Path) -> None:
    project = tmp_path / "p"
    create_project(project, rows=3000)  # the sample repeats some lines and names unknown products
    run(load_config(project / "retail-etl.yaml", env={}))
    source = csv_rows(project / "data" / "sales.csv")
    rows = q(project, "SELECT source_line, failed_rules, record, raw_line FROM retail_etl.sales_quarantine "
                      "WHERE stage = 'transform'")
    assert any(r["failed_rules"] == ["Transform.duplicate"] for r in rows)
    for row in rows:  # a blank field is read as NULL (csv.null_values), as in validate-stage records
        assert json.loads(row["record"]) == {k: v or None for k, v in source[row["source_line"]].items()}
        assert row["raw_line"] is None  # the reader splits these lines: their fields are the record


def test_a_transform_that_loses_or_multiplies_lines_fails_and_commits_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from retail_etl.pipeline import transform as step

    project = tmp_path / "p"
    create_project(project, rows=500)
    config = load_config(project / "retail-etl.yaml", env={})
    join = step.transform

    def multiplying_join(engine, **kwargs):
        enriched, quarantined = join(engine, **kwargs)
        doubled = engine.temp_name("doubled")
        engine.view(doubled, f"SELECT * FROM {enriched} UNION ALL (SELECT * FROM {enriched} LIMIT 1)")
        return f'"{doubled}"', quarantined

    monkeypatch.setattr(step, "transform", multiplying_join)
    with pytest.raises(ConservationError) as info:
        run(config)
    validated = count(project, "SELECT count(*) FROM retail_etl.sales_validated")
    message = str(info.value)
    assert f"source 'sales': {validated:,} validated line(s), but " in message
    assert "nothing was committed" in message
    assert not Lake(config).catalog.load("sales_enriched").snapshots()
    assert count(project, "SELECT count(*) FROM retail_etl.sales_quarantine WHERE stage = 'transform'") == 0

    monkeypatch.setattr(step, "transform", join)
    run(config)  # the next run completes the work
    assert count(project, "SELECT count(*) FROM retail_etl.sales_enriched") + count(
        project, "SELECT count(*) FROM retail_etl.sales_quarantine WHERE stage = 'transform'") == validated

