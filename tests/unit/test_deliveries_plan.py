"""Which deliveries a run validates, supersedes and replaces (pure)."""

from __future__ import annotations

from retail_etl.config.model import SourceConfig
from retail_etl.lake.lake import plan_deliveries
from retail_etl.lake.raw import RawFile, delivery_id

SALES = SourceConfig(entity="sales", path="data/*.csv", columns={"transaction_id": "id"})
PRODUCTS = SourceConfig(entity="products", path="data/p*.csv", columns={"product_id": "id"})


def deliveries(*specs: tuple[str, str], replace_at: int | None = None) -> list[RawFile]:
    """(name, ingest date) per delivery, in delivery order."""
    return [RawFile("s", name, f"raw/s/ingest_date={day}/{i}-{name}", f"{i:x}" * 64, 1, "", day,
                    delivery_id=delivery_id(i, f"{i:x}" * 64), replace=i == replace_at)
            for i, (name, day) in enumerate(specs)]


def ids(files: list[RawFile]) -> list[str]:
    return [f.delivery_id[:8] for f in files]


MANIFEST = [("sales.csv", "2024-01-01"), ("sales.csv", "2024-01-02"), ("other.csv", "2024-01-02"),
            ("sales.csv", "2024-01-03")]


def test_deliveries_accumulate_by_default() -> None:
    plan = plan_deliveries(deliveries(*MANIFEST), SALES, set(), None)
    assert ids(plan.files) == ["00000000", "00000001", "00000002", "00000003"]
    assert plan.superseded == [] and plan.replaces == {}


def test_a_declared_replacement_supersedes_the_earlier_deliveries_of_its_name() -> None:
    files = deliveries(*MANIFEST)
    replace = SALES.model_copy(update={"deliveries": "replace"})
    plan = plan_deliveries(files, replace, set(), None)
    assert ids(plan.files) == ["00000002", "00000003"]
    assert ids(plan.superseded) == ["00000000", "00000001"]
    assert {k[:8]: ids(v) for k, v in plan.replaces.items()} == {"00000003": ["00000000", "00000001"]}
    # Re-deriving the first day alone does not bring a replaced delivery back.
    day1 = plan_deliveries(files, replace, set(), "2024-01-01")
    assert day1.files == [] and ids(day1.superseded) == ["00000000"]
    # Processed deliveries are left out; the replacement still names what it replaces.
    later = plan_deliveries(files, replace, {f.path for f in files[:3]}, None)
    assert ids(later.files) == ["00000003"] and ids(later.replaces[files[3].delivery_id]) == ["00000000", "00000001"]


def test_one_replacing_delivery_in_an_accumulating_source() -> None:
    plan = plan_deliveries(deliveries(*MANIFEST, replace_at=1), SALES, set(), None)
    assert ids(plan.files) == ["00000001", "00000002", "00000003"] and ids(plan.superseded) == ["00000000"]
    assert {k[:8]: ids(v) for k, v in plan.replaces.items()} == {"00000001": ["00000000"]}


def test_the_product_master_is_a_snapshot() -> None:
    plan = plan_deliveries(deliveries(("p1.csv", "2024-01-01"), ("p2.csv", "2024-01-02")), PRODUCTS, set(), None)
    assert ids(plan.files) == ["00000001"] and ids(plan.superseded) == ["00000000"]
