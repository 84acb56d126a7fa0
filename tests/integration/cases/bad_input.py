"""The bad-input corpus: the files real extracts contain, each with what the pipeline must do.

Every case is built here in code (no committed binaries). A case is either *clean*: the run
succeeds and its file(s) give exactly ``valid`` validated lines and the listed quarantined
lines, each with its failed rules; or an *error*: the command exits with ``exit_code`` and one
error line containing ``error``, plus a hint. A case whose source needs settings of its own gets
a source of its own (``sales_<id>``, files in ``<id>/``). Clean cases share one project and one
run (their transaction ids never collide); the others get a project each.
"""

from __future__ import annotations

import json
import stat
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

HEADER = "receipt_id,line_no,sold_at,store,sku,customer_id,qty,unit_price,discount,currency,channel,payment_method"
PRODUCTS_CSV = (
    "sku,name,category,subcategory,brand,unit_cost,list_price\n"
    "P00001,Mint 20g,Produce,Herbs,Farm,0.39,0.59\n"
    "P00002,Box 28cm,Household,Kitchen,Velvet,5.77,12.09\n"
    "P00003,Tea 100g,Grocery,Drinks,Leaf,1.10,2.49\n"
)

# Rule ids as they appear in failed_rules.
READ = "Read.malformed"
DUPLICATE = "Transform.duplicate"
UNKNOWN_PRODUCT = "Transform.unknown_product"
TRANSFORM_RULES = (DUPLICATE, UNKNOWN_PRODUCT)
BAD_SOLD_AT = ("IsComplete.sale_date", "Parse.sold_at", "Required.sale_date")


def row(
    tid: str,
    n: int = 1,
    *,
    sold_at: str = "2024-01-02 10:00:00",
    store: str = "S001",
    sku: str = "P00001",
    customer: str = "C1",
    qty: str = "1",
    price: str = "1.50",
    discount: str = "0.00",
    currency: str = "EUR",
    channel: str = "store",
    payment: str = "card",
    sep: str = ",",
) -> str:
    """One sales line in the corpus's layout (fields as given: quote them yourself)."""
    return sep.join((tid, str(n), sold_at, store, sku, customer, qty, price, discount, currency, channel, payment))


def csv(*lines: str, header: str = HEADER, eol: str = "\n", final: bool = True, encoding: str = "utf-8") -> bytes:
    """A file of ``header`` and ``lines`` joined by ``eol`` (ending with one unless ``final`` is false)."""
    text = eol.join((header, *lines)) + (eol if final else "")
    return text.encode(encoding)


def good(tid: str, count: int = 2) -> list[str]:
    """``count`` clean lines of transaction ``tid``."""
    return [row(tid, i + 1) for i in range(count)]


Setup = Callable[[Path], None]  # called with the case's input folder


@dataclass(frozen=True)
class Case:
    """One kind of bad input and the outcome it must have."""

    id: str
    kind: str
    files: Mapping[str, bytes] = field(default_factory=dict)  # path under data/ (or the project, with a /)
    made: tuple[str, ...] = ()  # names of the input files ``setup`` makes
    valid: int = 0  # lines in sales_validated from these files
    quarantined: tuple[tuple[str, ...], ...] = ()  # one entry per quarantined line: its failed rules
    values: Mapping[str, tuple[object, ...]] = field(default_factory=dict)  # column -> values of the valid lines
    records: int | None = None  # lines read from the files (default: valid + quarantined before transform)
    error: str | None = None  # the command fails: text of its one error line
    exit_code: int = 0
    command: tuple[str, ...] = ("run",)
    setup: Setup | None = None  # makes what bytes cannot say (links, folders) in the input folder
    source: Mapping[str, object] = field(default_factory=dict)  # settings of its own source (a function edits one)
    check: Callable[[Path, str], None] | None = None  # further checks on (project, stdout + stderr)
    xfail: str | None = None  # why the outcome is wrong today

    @property
    def alone(self) -> bool:
        """Needs a project of its own: it fails (or may, today) or runs another command than ``run``."""
        return bool(self.error or self.xfail or self.command != ("run",))

    @property
    def source_name(self) -> str:
        """The source its files belong to."""
        return f"sales_{self.id}" if self.source else "sales"

    @property
    def folder(self) -> str:
        """Its input folder, relative to the project."""
        return self.id if self.source else "data"

    @property
    def early_quarantined(self) -> int:
        """Lines quarantined when read or validated (not by the transform)."""
        return sum(1 for rules in self.quarantined if not set(rules) & set(TRANSFORM_RULES))

    @property
    def expected_records(self) -> int:
        return self.records if self.records is not None else self.valid + self.early_quarantined

    @property
    def names(self) -> list[str]:
        """The input files' names, as ``source_file`` records them."""
        return [Path(p).name for p in self.files] + list(self.made)


def _q(*rules: str) -> tuple[str, ...]:
    return tuple(sorted(rules))


def _one(case_id: str, kind: str, body: bytes, name: str | None = None, **kw: object) -> Case:
    return Case(case_id, kind, {name or f"{case_id}.csv": body}, **kw)  # type: ignore[arg-type]


def _symlink(target_text: bytes, link: str = "sales_link.csv") -> Setup:
    """A link named ``link`` (relative to the input folder) to a private file outside the inputs."""

    def setup(folder: Path) -> None:
        outside = folder.parent / "outside" / f"{folder.name}.csv"
        outside.parent.mkdir(exist_ok=True)
        outside.write_bytes(target_text)
        outside.chmod(0o600)
        (folder / link).symlink_to(outside)

    return setup


def _directory(folder: Path) -> None:
    (folder / "dir_matching_glob.csv").mkdir()
    (folder / "dir_matching_glob.csv" / "inner.csv").write_bytes(csv(*good("DIR")))


def _dangling(folder: Path) -> None:
    (folder / "gone.csv").symlink_to(folder / "nowhere.csv")


def _said(text: str) -> Callable[[Path, str], None]:
    def check(_project: Path, output: str) -> None:
        assert text in output, output

    return check


def _without(rule: str) -> Callable[[object], object]:
    return lambda rules: [r for r in rules if rule not in r["rule"]]  # type: ignore[attr-defined,union-attr]


LONG_FIELD = "C" + "x" * 200_000
MB_FIELD = "M" * (1 << 20)
SEMICOLON_HEADER = HEADER.replace(",", ";")
INJECTION = "sku\" || '-INJECTED-' || \"sku"


def cases() -> list[Case]:
    """The whole corpus."""
    c: list[Case] = []
    # --- encodings ---------------------------------------------------------------------------
    c += [
        _one("enc_utf8_bom", "encodings", b"\xef\xbb\xbf" + csv(*good("EB")), valid=2),
        _one("enc_utf8_multibyte", "encodings", csv(row("EM", customer="Zoë-東京")), valid=1,
             values={"customer_id": ("Zoë-東京",)}),
        Case("enc_utf16le_bom_in_utf8_source", "encodings",
             {"enc_utf16le.csv": b"\xff\xfe" + csv(*good("E16L"), encoding="utf-16-le")},
             error="enc_utf16le.csv: header (line 1) has byte 0xFF, invalid in encoding utf-8", exit_code=1),
        Case("enc_utf16be_bom_in_utf8_source", "encodings",
             {"enc_utf16be.csv": b"\xfe\xff" + csv(*good("E16B"), encoding="utf-16-be")},
             error="enc_utf16be.csv: header (line 1) has byte 0xFE, invalid in encoding utf-8", exit_code=1),
        Case("enc_utf16le_bom_declared", "encodings",
             {"enc_utf16le_declared.csv": b"\xff\xfe" + csv(*good("E16D"), encoding="utf-16-le")}, valid=2,
             source={"csv": {"encoding": "utf-16"}}),
        Case("enc_utf16be_bom_declared", "encodings",
             {"enc_utf16be_declared.csv": b"\xfe\xff" + csv(*good("E16E"), eol="\r\n", encoding="utf-16-be")},
             valid=2, source={"csv": {"encoding": "utf-16"}}),
        _one("enc_latin1_in_utf8", "encodings",
             csv(row("EL", 1)) + row("EL", 2, customer="caf\xe9").encode("latin-1") + b"\n", valid=1,
             quarantined=((READ,),)),
        _one("enc_invalid_utf8_mid_line", "encodings",
             csv(row("EI", 1)) + b"EI,2,2024-01-02 10:00:00,S001,P00001,C\xff\xfe1,1,1.50,0.00,EUR,store,card\n"
             + row("EI", 3).encode() + b"\n", valid=2, quarantined=((READ,),)),
        _one("enc_truncated_utf8_sequence", "encodings",
             csv(row("ET", 1)) + row("ET", 2, customer="Zo").encode() + b"\xc3\n", valid=1,
             quarantined=((READ,),)),
        _one("enc_nul_byte", "encodings", csv(row("EN", 1), row("EN", 2, customer="C\x001")), valid=2,
             values={"customer_id": ("C1", "C\x001")}),
        _one("enc_mixed_utf8_latin1", "encodings",
             csv(row("EX", 1, customer="Zoë")) + row("EX", 2, customer="Zo\xeb").encode("latin-1") + b"\n"
             + row("EX", 3, customer="Zoë").encode() + b"\n", valid=2, quarantined=((READ,),)),
        Case("enc_latin1_declared", "encodings",
             {"enc_latin1_declared.csv": csv(row("ED", customer="café"), encoding="latin-1")}, valid=1,
             values={"customer_id": ("café",)}, source={"csv": {"encoding": "latin-1"}}),
    ]
    # --- quoting -----------------------------------------------------------------------------
    c += [
        _one("quote_unterminated_at_end", "quoting",
             csv(*good("QU")) + b'QU,3,2024-01-02 10:00:00,S001,P00001,"C1,1,1.50,0.00,EUR,store,card\n',
             valid=2, quarantined=((READ,),)),
        _one("quote_unterminated_mid_file", "quoting",
             csv(row("QM", 1, customer='"C1'), row("QM", 2), row("QM", 3)), valid=2, quarantined=((READ,),)),
        _one("quote_inside_unquoted_field", "quoting", csv(row("QI", customer='C"1"x')), valid=1,
             values={"customer_id": ('C"1"x',)}),
        _one("quote_doubled", "quoting", csv(row("QD", customer='"C""1"')), valid=1,
             values={"customer_id": ('C"1',)}),
        _one("quote_embedded_newline", "quoting", csv(row("QN", 1, customer='"C\n1"'), row("QN", 2)),
             valid=2, values={"customer_id": ("C\n1", "C1")}),
        _one("quote_embedded_crlf", "quoting", csv(row("QC", 1, customer='"C\r\n1"'), row("QC", 2), eol="\r\n"),
             valid=2, values={"customer_id": ("C\r\n1", "C1")}),
        _one("quote_embedded_delimiter", "quoting", csv(row("QE", customer='"C,1"')), valid=1,
             values={"customer_id": ("C,1",)}),
        _one("quote_junk_after_closing", "quoting", csv(row("QJ", 1, customer='"C1"x'), row("QJ", 2)),
             valid=1, quarantined=((READ,),)),
        _one("quote_all_fields_quoted", "quoting",
             csv(",".join(f'"{v}"' for v in row("QA").split(",")),
                 header=",".join(f'"{h}"' for h in HEADER.split(","))), valid=1),
    ]
    # --- line endings ------------------------------------------------------------------------
    c += [
        _one("eol_crlf", "line endings", csv(*good("LC", 3), eol="\r\n"), valid=3),
        Case("eol_cr_only", "line endings", {"eol_cr_only.csv": csv(*good("LR", 3), eol="\r")},
             error="eol_cr_only.csv: header (line 1) holds a carriage return", exit_code=1),
        _one("eol_mixed", "line endings",
             (HEADER + "\r\n" + row("LM", 1) + "\n" + row("LM", 2) + "\r\n" + row("LM", 3) + "\n").encode(), valid=3),
        _one("eol_no_final_newline", "line endings", csv(*good("LN", 2), final=False), valid=2),
        _one("eol_blank_lines", "line endings", csv(row("LB", 1), "", "", row("LB", 2), ""), valid=2),
        _one("eol_only_blank_lines", "line endings", b"\n\n\n\n"),
        _one("eol_header_then_blank_lines", "line endings", csv("", "", "")),
        _one("eol_whitespace_lines", "line endings", csv(row("LW", 1), "   ", "\t", row("LW", 2), "  "), valid=2),
        _one("eol_trailing_spaces_after_row", "line endings", csv(row("LT", 1) + "   "), valid=1),
    ]
    # --- field counts ------------------------------------------------------------------------
    c += [
        Case("fields_header_missing_column", "field counts",
             {"fields_header_missing_column.csv": csv(
                 row("FM").rsplit(",", 1)[0], header=HEADER.replace(",payment_method", ""))},
             error="fields_header_missing_column.csv: missing column(s) 'payment_method'", exit_code=1),
        _one("fields_header_extra_column", "field counts", csv(row("FX") + ",extra", header=HEADER + ",note"),
             valid=1),
        _one("fields_row_one_too_few", "field counts", csv(row("FF", 1), row("FF", 2).rsplit(",", 1)[0]),
             valid=1, quarantined=((READ,),)),
        _one("fields_row_one_too_many", "field counts", csv(row("FT", 1), row("FT", 2) + ",x"),
             valid=1, quarantined=((READ,),)),
        _one("fields_row_1000_fields", "field counts", csv(row("FK", 1), ",".join(["x"] * 1000)),
             valid=1, quarantined=((READ,),)),
        _one("fields_row_of_delimiters", "field counts", csv(row("FD", 1), "," * 11), valid=1,
             quarantined=(_q("IsComplete.transaction_id", "IsComplete.product_id", "IsComplete.store_id",
                             "IsComplete.quantity", "IsComplete.unit_price", "IsComplete.sale_date",
                             "Required.sale_date"),)),
        _one("fields_trailing_empty_field", "field counts", csv(row("FE", 1) + ","), valid=1),
        Case("fields_duplicate_header_name", "field counts",
             {"fields_duplicate_header_name.csv": csv(row("FH") + ",2", header=HEADER + ",QTY")},
             error="fields_duplicate_header_name.csv: header (line 1): duplicate column names: qty / QTY",
             exit_code=1),
        Case("fields_semicolon_in_comma_source", "field counts",
             {"fields_semicolon.csv": csv(row("FS", sep=";"), header=SEMICOLON_HEADER)},
             error="fields_semicolon.csv: missing column(s)", exit_code=1),
        Case("fields_header_with_lone_quote", "field counts",
             {"fields_lone_quote.csv": csv(row("FQ"), header=HEADER.replace(",sku,", ',sku",'))},
             valid=1, values={"product_id": ("P00001",)}, source={"columns": {"product_id": 'sku"'}}),
        Case("fields_header_sql_injection", "field counts",
             {"fields_injection.csv": csv(row("FI"), header=HEADER.replace(",sku,", f",{INJECTION},"))},
             valid=1, values={"product_id": ("P00001",)}, source={"columns": {"product_id": INJECTION}}),
    ]
    # --- sizes -------------------------------------------------------------------------------
    c += [
        _one("size_empty_file", "sizes", b""),
        _one("size_header_only", "sizes", csv()),
        _one("size_header_only_no_newline", "sizes", csv(final=False)),
        _one("size_very_long_line", "sizes", csv(row("SL", customer=LONG_FIELD), row("SL", 2)), valid=2,
             values={"customer_length": (len(LONG_FIELD), 2)}),
        _one("size_1mb_single_field", "sizes", csv(row("SM", 1, customer=MB_FIELD), row("SM", 2)),
             valid=1, quarantined=((READ,),)),  # a record over 1 MiB is rejected, not loaded
        _one("size_many_lines", "sizes", csv(*good("SN", 5000)), valid=5000),
        Case("size_binary_garbage", "sizes", {"size_binary_garbage.csv": bytes(range(256)) * 64},
             error="size_binary_garbage.csv: missing column(s)", exit_code=1),
    ]
    # --- names -------------------------------------------------------------------------------
    c += [
        _one("name_spaces", "names", csv(*good("NS")), name="sales with spaces.csv", valid=2),
        _one("name_unicode", "names", csv(*good("NU")), name="ventes_été_東京.csv", valid=2),
        _one("name_long", "names", csv(*good("NL")), name="l" * 240 + ".csv", valid=2),
        _one("name_japanese_91_bytes", "names", csv(*good("NJ")), name="売上データ_東京本店_" * 3 + ".csv",
             valid=2),
        _one("name_leading_dash", "names", csv(*good("ND")), name="-sales.csv", valid=2),
        _one("name_quotes", "names", csv(*good("NQ")), name="it's a \"quote\".csv", valid=2),
        _one("name_sql_fragment", "names", csv(*good("NF")), name="x'); drop table t; --.csv", valid=2),
        _one("name_dotfile", "names", csv(*good("NH")), name=".hidden.csv", valid=2),
        _one("name_glob_characters", "names", csv(*good("NG")), name="sales[1]*?.csv", valid=2),
        _one("name_upper_case_extension", "names", csv(*good("NX")), name="SALES.CSV", records=0),  # not *.csv
        Case("name_ingest_leading_dash", "names", {"in/-dash.csv": csv(*good("NI"))}, records=0,
             command=("ingest", "sales", "--", "in/-dash.csv"), check=_said("ingested -dash.csv -> raw/sales/")),
        Case("name_ingest_rich_markup", "names", {"in/[bold red]x.csv": csv(*good("NR"))}, records=0,
             command=("ingest", "sales", "in/[bold red]x.csv"), check=_said("ingested [bold red]x.csv -> ")),
    ]
    # --- numbers -----------------------------------------------------------------------------
    bad_price, bad_qty = _q("IsComplete.unit_price", "Parse.unit_price"), _q("IsComplete.quantity", "Parse.quantity")
    c += [
        _one("num_thousands_separator", "numbers", csv(row("MT", 1, price='"1,234.50"'), row("MT", 2)),
             valid=1, quarantined=(bad_price,)),
        Case("num_thousands_separator_declared", "numbers",
             {"num_thousands_declared.csv": csv(row("MU", price='"1,234.50"'))}, valid=1,
             values={"unit_price": ("1234.5000",)}, source={"csv": {"thousands_separator": ","}}),
        _one("num_comma_decimal", "numbers", csv(row("MC", 1, price='"1,50"'), row("MC", 2)),
             valid=1, quarantined=(bad_price,)),
        Case("num_comma_decimal_declared", "numbers",
             {"num_comma_decimal_declared.csv": csv(row("MK", price="1,50", discount="0,10", sep=";"),
                                                     header=SEMICOLON_HEADER)},
             valid=1, values={"unit_price": ("1.5000",), "discount_amount": ("0.10",)},
             source={"csv": {"delimiter": ";", "decimal_separator": ","}}),
        _one("num_negative_quantity_is_a_return", "numbers", csv(row("MN", qty="-2")), valid=1,
             values={"quantity": ("-2.000",)}),
        _one("num_negative_price", "numbers", csv(row("MP", price="-1.50")),
             quarantined=(("ColumnValues.unit_price",),)),
        _one("num_zero_quantity", "numbers", csv(row("MZ", qty="0")), quarantined=(("ColumnValues.quantity",),)),
        # scientific notation only where the source declares it, and then only when the column holds it exactly
        _one("num_exponent", "numbers", csv(row("ME", 1, price="1.5e1"), row("ME", 2, qty="1e2")),
             quarantined=(bad_price, bad_qty)),
        Case("num_exponent_declared", "numbers",
             {"num_exponent_declared.csv": csv(row("MX", 1, price="1.5e1"), row("MX", 2, qty="1e2"),
                                               row("MX", 3, qty="1e-7"))}, valid=2,
             quarantined=(bad_qty,), values={"unit_price": ("15.0000", "1.5000"), "quantity": ("1.000", "100.000")},
             source={"csv": {"exponent": True}}),
        _one("num_digit_underscore", "numbers", csv(row("MD", 1, qty="1_000"), row("MD", 2, price="1_0.50")),
             quarantined=(bad_qty, bad_price)),
        _one("num_fraction_as_line_number", "numbers", csv(row("MF", "1.5"), row("MF", 2)),
             valid=1, quarantined=(_q("Parse.line_number"),)),
        _one("num_huge", "numbers", csv(row("MH", 1, qty="99999999999999999999999"), row("MH", 2, price="1" * 40)),
             quarantined=(bad_qty, bad_price)),
        _one("num_nan", "numbers", csv(row("MA", 1, price="NaN"), row("MA", 2, qty="nan")),
             quarantined=(bad_price, bad_qty)),
        _one("num_inf", "numbers", csv(row("MI", 1, price="inf"), row("MI", 2, price="-Infinity")),
             quarantined=(bad_price, bad_price)),
        _one("num_currency_symbol", "numbers", csv(row("MS", 1, price="€1.50"), row("MS", 2, price="$1.50"),
                                                    row("MS", 3, price="1.50 EUR")),
             quarantined=(bad_price,) * 3),
        _one("num_empty", "numbers", csv(row("MM", 1, qty=""), row("MM", 2, price="")),
             quarantined=(("IsComplete.quantity",), ("IsComplete.unit_price",))),
        _one("num_padded", "numbers", csv(row("MW", qty=" 2 ", price=" 1.50 ")), valid=1,
             values={"quantity": ("2.000",), "unit_price": ("1.5000",)}),
        _one("num_leading_plus", "numbers", csv(row("ML", qty="+2", price="+1.50")), valid=1,
             values={"quantity": ("2.000",)}),
    ]
    # --- dates -------------------------------------------------------------------------------
    c += [
        _one("date_invalid_month", "dates", csv(row("DM", sold_at="2024-13-01 10:00:00")), quarantined=(BAD_SOLD_AT,)),
        _one("date_feb_30", "dates", csv(row("DF", sold_at="2024-02-30 10:00:00")), quarantined=(BAD_SOLD_AT,)),
        _one("date_feb_29_leap_year", "dates", csv(row("DL", sold_at="2024-02-29 23:59:59")), valid=1,
             values={"sale_date": ("2024-02-29",)}),
        _one("date_feb_29_common_year", "dates", csv(row("DC", sold_at="2023-02-29 10:00:00")),
             quarantined=(BAD_SOLD_AT,)),
        _one("date_year_0001", "dates", csv(row("D1", sold_at="0001-01-01 00:00:00")), valid=1,
             values={"sale_date": ("0001-01-01",)}),
        _one("date_year_9999", "dates", csv(row("D9", sold_at="9999-12-31 23:59:59")),
             quarantined=(("ColumnValues.sale_date",),)),
        _one("date_with_zone", "dates", csv(row("DZ", 1, sold_at="2024-01-02 10:00:00+02:00"),
                                             row("DZ", 2, sold_at="2024-01-02T10:00:00Z")),
             quarantined=(BAD_SOLD_AT,) * 2),
        _one("date_only", "dates", csv(row("DO", sold_at="2024-01-02")), quarantined=(BAD_SOLD_AT,)),
        _one("date_empty", "dates", csv(row("DE", sold_at="")),
             quarantined=(("IsComplete.sale_date", "Required.sale_date"),)),
        _one("date_hour_25", "dates", csv(row("DH", sold_at="2024-01-02 25:00:00")), quarantined=(BAD_SOLD_AT,)),
    ]
    # --- keys, references, values ------------------------------------------------------------
    c += [
        _one("dup_within_file", "duplicates", csv(row("UW", 1), row("UW", 1), row("UW", 2)),
             valid=3, quarantined=((DUPLICATE,),)),
        Case("dup_across_files", "duplicates",
             {"dup_across_a.csv": csv(row("UA", 1)), "dup_across_b.csv": csv(row("UA", 1, qty="2"))},
             valid=2, quarantined=((DUPLICATE,),)),
        # The same content under another name is the same delivery: ingested once.
        Case("dup_same_content_two_names", "duplicates",
             {"dup_same_a.csv": csv(row("US", 1)), "dup_same_b.csv": csv(row("US", 1))}, valid=1, records=1),
        _one("unknown_product", "references", csv(row("RU", 1, sku="P99999"), row("RU", 2)),
             valid=1, quarantined=(("ReferentialIntegrity.product_id",),)),
        Case("unknown_product_without_rule", "references",
             {"unknown_product_late.csv": csv(row("RT", 1, sku="P99999"), row("RT", 2))},
             valid=2, quarantined=((UNKNOWN_PRODUCT,),),
             source={"rules": _without("ReferentialIntegrity")}),
        _one("product_lower_case_padded", "references", csv(row("RL", sku=" p00002 ")), valid=1,
             values={"product_id": ("P00002",)}),
        _one("payment_mapped", "values", csv(row("VP", 1, payment="Credit Card"), row("VP", 2, payment="DEBIT")),
             valid=2, values={"payment_method": ("card", "card")}),
        _one("payment_unknown", "values", csv(row("VU", payment="bitcoin")),
             quarantined=(("ColumnValues.payment_method",),)),
        _one("empty_ids", "values", csv(row("", 1), row("VI", 2, sku="", store="")),
             quarantined=(("IsComplete.transaction_id",), _q("IsComplete.product_id", "IsComplete.store_id"))),
    ]
    # --- symlinks and the file system --------------------------------------------------------
    c += [
        Case("fs_symlink_refused", "symlinks", setup=_symlink(csv(*good("YR"))),
             error="sales_link.csv: is a symbolic link", exit_code=1),
        Case("fs_symlink_followed_when_configured", "symlinks", setup=_symlink(csv(*good("YF")), "followed.csv"),
             made=("followed.csv",), valid=2, source={"follow_symlinks": True},
             check=lambda project, _out: _only_raw(project, "sales_fs_symlink_followed_when_configured",
                                                   "followed.csv")),
        Case("fs_symlink_dangling_followed", "symlinks", setup=_dangling, source={"follow_symlinks": True},
             error="gone.csv: no such file", exit_code=1),
        Case("fs_symlink_ingest_refused", "symlinks", setup=_symlink(csv(*good("YI")), "../link.csv"),
             command=("ingest", "sales", "link.csv"), error="link.csv: is a symbolic link", exit_code=1),
        Case("fs_symlink_ingest_followed", "symlinks", setup=_symlink(csv(*good("YJ")), "../link.csv"),
             command=("ingest", "sales", "--follow-symlinks", "link.csv"),
             check=lambda project, _out: _only_raw(project, "sales", "link.csv")),
        Case("fs_directory_matching_glob", "file system", setup=_directory, made=("dir_matching_glob.csv",)),
        Case("fs_ingest_missing_file", "file system", command=("ingest", "sales", "vanished.csv"),
             error="vanished.csv: no such file", exit_code=1),
        Case("fs_ingest_a_folder", "file system", command=("ingest", "sales", "data"),
             error="data: is a folder, not a file", exit_code=1),
    ]
    return c


def _only_raw(project: Path, source: str, name: str) -> None:
    """The raw zone holds a regular copy of the link's target under the link's name, as private as the target."""
    (copy,) = (project / "lake" / "raw" / source).rglob(name)
    manifest = (project / "lake" / "raw" / source / "_manifest.jsonl").read_text()
    (origin,) = [e["origin"] for e in map(json.loads, manifest.splitlines()) if e["name"] == name]
    assert Path(origin).parent.name == "outside"  # what the link points to, not the link
    assert not copy.is_symlink() and copy.read_bytes() == Path(origin).read_bytes()
    assert stat.S_IMODE(copy.stat().st_mode) == 0o400  # the target is 0600: not world-readable, not writable

