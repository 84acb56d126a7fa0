"""Parse quality rules written in a subset of AWS Glue's DQDL into a small AST.

Supported rules (keywords are case-sensitive, column names are double-quoted)::

    IsComplete "col"
    IsUnique "col" ["col2" ...]
    ColumnValues "col" <condition>
    ColumnLength "col" <condition>
    ReferentialIntegrity "col" "table.col" <condition>
    RowCount <condition>
    CustomSql "SELECT ... FROM primary ..." <condition>

A condition is ``<op> value`` (op: ``= != > >= < <=``), ``between A and B``,
``in [v, ...]``, ``not in [v, ...]`` or ``matches "regex"`` (ColumnValues only). A
value is a number, a "string" (dates are strings such as "2024-01-01"), ``now()`` or
``(now() - 3 days)`` / ``(now() + 1 hours)`` (units: days, hours, minutes). Inside a
string, ``\\"`` is a quote and ``\\\\`` a backslash; other backslashes are kept as
written so regular expressions read naturally (``"\\d+"``).

This module is pure: compiling rules to SQL lives in :mod:`retail_etl.quality.compile`.
"""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass, field
from decimal import Decimal
from typing import ClassVar, Literal

from retail_etl.errors import RuleSyntaxError

COMPARISONS = ("=", "!=", ">", ">=", "<", "<=")
TIME_UNITS = {"day": "days", "days": "days", "hour": "hours", "hours": "hours", "minute": "minutes", "minutes": "minutes"}


@dataclass(frozen=True)
class Now:
    """``now()`` shifted by ``amount`` ``unit`` (negative amounts are in the past)."""

    amount: int = 0
    unit: Literal["days", "hours", "minutes"] = "days"

    def __str__(self) -> str:
        if not self.amount:
            return "now()"
        return f"(now() {'-' if self.amount < 0 else '+'} {abs(self.amount)} {self.unit})"


Value = Decimal | str | Now


def _show(value: Value) -> str:
    if isinstance(value, Decimal):
        return format(value, "f")
    if isinstance(value, str):
        # Inverse of _unquote: only backslashes before a quote, a backslash or the end need escaping.
        return '"' + re.sub(r'\\(?=[\\"]|$)', r"\\\\", value).replace('"', '\\"') + '"'
    return str(value)


@dataclass(frozen=True)
class Condition:
    """An operator and its operands: ``op`` is a comparison, ``between``, ``in``, ``not in`` or ``matches``."""

    op: str
    operands: tuple[Value, ...]

    def check(self, value: float) -> bool:
        """Whether a dataset-level number satisfies the condition (operands must be numbers)."""
        if not all(isinstance(v, Decimal) for v in self.operands):
            raise TypeError(f"condition '{self}' does not compare numbers")
        x = Decimal(str(value))
        ops = self.operands
        match self.op:
            case "=":
                return x == ops[0]
            case "!=":
                return x != ops[0]
            case ">":
                return x > ops[0]
            case ">=":
                return x >= ops[0]
            case "<":
                return x < ops[0]
            case "<=":
                return x <= ops[0]
            case "between":
                return ops[0] <= x <= ops[1]
            case "in":
                return x in ops
            case "not in":
                return x not in ops
        raise TypeError(f"condition '{self}' does not compare numbers")

    def __str__(self) -> str:
        if self.op == "between":
            return f"between {_show(self.operands[0])} and {_show(self.operands[1])}"
        if self.op in ("in", "not in"):
            return f"{self.op} [{', '.join(_show(v) for v in self.operands)}]"
        return f"{self.op} {_show(self.operands[0])}"


def _slug(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_]+", "_", name).strip("_") or "_"


@dataclass(frozen=True)
class Rule:
    """A parsed rule. ``text`` is the rule as written (ignored when comparing rules)."""

    text: str = field(compare=False)
    row_level: ClassVar[bool] = True

    @property
    def kind(self) -> str:
        return type(self).__name__

    @property
    def columns(self) -> tuple[str, ...]:
        return ()

    @property
    def default_id(self) -> str:
        """A readable id such as ``IsComplete.customer_id``; callers make ids unique."""
        return ".".join([self.kind, *map(_slug, self.columns)])


@dataclass(frozen=True)
class _ColumnRule(Rule):
    column: str

    @property
    def columns(self) -> tuple[str, ...]:
        return (self.column,)


@dataclass(frozen=True)
class IsComplete(_ColumnRule):
    """The column is not NULL (nor blank, for text)."""


@dataclass(frozen=True)
class IsUnique(Rule):
    """The combination of ``keys`` appears once; later duplicates in source order fail."""

    keys: tuple[str, ...]

    @property
    def columns(self) -> tuple[str, ...]:
        return self.keys


@dataclass(frozen=True)
class ColumnValues(_ColumnRule):
    """Each value satisfies ``condition``."""

    condition: Condition


@dataclass(frozen=True)
class ColumnLength(_ColumnRule):
    """Each value's length in characters satisfies ``condition``."""

    condition: Condition


@dataclass(frozen=True)
class ReferentialIntegrity(_ColumnRule):
    """Each value exists in ``ref_table.ref_column``; ``condition`` bounds the share of matching rows."""

    ref_table: str
    ref_column: str
    condition: Condition


@dataclass(frozen=True)
class RowCount(Rule):
    """The number of rows satisfies ``condition``."""

    row_level: ClassVar[bool] = False
    condition: Condition


@dataclass(frozen=True)
class CustomSql(Rule):
    """``sql`` (a SELECT over the table ``primary``) returns one number satisfying ``condition``."""

    row_level: ClassVar[bool] = False
    sql: str
    condition: Condition


RULE_TYPES = ("IsComplete", "IsUnique", "ColumnValues", "ColumnLength", "ReferentialIntegrity", "RowCount", "CustomSql")

_TOKEN = re.compile(
    r"""(?P<ws>\s+)
    |(?P<string>"(?:[^"\\]|\\.)*")
    |(?P<number>\d+(?:\.\d+)?(?:[eE][+-]?\d+)?(?![\w.]))
    |(?P<badnumber>\d[\w.]*)
    |(?P<word>[A-Za-z_]\w*)
    |(?P<op>[=!<>]+)
    |(?P<punct>[\[\](),+\-])""",
    re.VERBOSE | re.DOTALL,
)


@dataclass(frozen=True)
class _Token:
    kind: str  # string, number, word, op, punct, end
    text: str
    pos: int

    def describe(self) -> str:
        return "the end of the rule" if self.kind == "end" else repr(self.text)


def _error(text: str, pos: int, message: str, hint: str | None = None) -> RuleSyntaxError:
    shown = re.sub(r"\s", " ", text)
    return RuleSyntaxError(f"{message} at column {pos + 1} of the rule:\n    {shown}\n    {' ' * pos}^", hint=hint)


def _tokenize(text: str) -> list[_Token]:
    tokens: list[_Token] = []
    pos = 0
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if m is None:
            if text[pos] == '"':
                raise _error(text, pos, 'unterminated string: expected a closing \'"\'')
            raise _error(text, pos, f"unexpected character {text[pos]!r}")
        kind = m.lastgroup
        assert kind is not None
        if kind == "badnumber":
            raise _error(text, pos, f"invalid number {m.group()!r}")
        if kind != "ws":
            tokens.append(_Token(kind, m.group(), pos))
        pos = m.end()
    tokens.append(_Token("end", "", len(text)))
    return tokens


def _unquote(token_text: str) -> str:
    return re.sub(r'\\(["\\])', r"\1", token_text[1:-1])


_VALUE_OPS = "an operator (=, !=, >, >=, <, <=), 'between', 'in', 'not in' or 'matches'"
_NUMBER_OPS = "an operator (=, !=, >, >=, <, <=), 'between', 'in' or 'not in'"


class _Parser:
    def __init__(self, text: str) -> None:
        self.text = text
        self.tokens = _tokenize(text)
        self.i = 0

    @property
    def tok(self) -> _Token:
        return self.tokens[self.i]

    def advance(self) -> _Token:
        tok = self.tok
        self.i += 1
        return tok

    def fail(self, expected: str, tok: _Token | None = None) -> RuleSyntaxError:
        tok = tok or self.tok
        return _error(self.text, tok.pos, f"expected {expected}, got {tok.describe()}")

    def at(self, kind: str, text: str | None = None) -> bool:
        return self.tok.kind == kind and (text is None or self.tok.text == text)

    def expect(self, kind: str, text: str, expected: str) -> _Token:
        if not self.at(kind, text):
            raise self.fail(expected)
        return self.advance()

    def string(self, expected: str) -> str:
        if not self.at("string"):
            raise self.fail(expected)
        return _unquote(self.advance().text)

    def column(self) -> str:
        tok = self.tok
        name = self.string('a quoted column name ("...")')
        if not name.strip():
            raise _error(self.text, tok.pos, "empty column name")
        return name

    def number(self) -> Decimal:
        sign = self.advance().text if self.at("punct", "-") or self.at("punct", "+") else ""
        if not self.at("number"):
            raise self.fail("a number")
        return Decimal(sign + self.advance().text)

    def now(self) -> Now:
        if self.at("punct", "("):
            self.advance()
            value = self.now()
            self.expect("punct", ")", "')'")
            return value
        self.expect("word", "now", "now()")
        self.expect("punct", "(", "'(' after now")
        self.expect("punct", ")", "')' after now(")
        if not (self.at("punct", "-") or self.at("punct", "+")):
            return Now()
        sign = -1 if self.advance().text == "-" else 1
        tok = self.tok
        amount = self.number()
        if amount != amount.to_integral_value():
            raise _error(self.text, tok.pos, f"expected a whole number, got {tok.describe()}")
        if not (self.at("word") and self.tok.text in TIME_UNITS):
            raise self.fail("a time unit (days, hours or minutes)")
        return Now(sign * int(amount), TIME_UNITS[self.advance().text])  # type: ignore[arg-type]

    def value(self, numeric: bool) -> Value:
        if numeric:
            return self.number()
        if self.at("string"):
            return _unquote(self.advance().text)
        if self.at("word", "now") or self.at("punct", "("):
            return self.now()
        if self.at("number") or self.at("punct", "-") or self.at("punct", "+"):
            return self.number()
        raise self.fail('a value (a number, a "string" or now())')

    def values(self, numeric: bool) -> tuple[Value, ...]:
        self.expect("punct", "[", "'[' to start a list")
        if self.at("punct", "]"):
            raise self.fail("at least one value in the list")
        items = [self.value(numeric)]
        while self.at("punct", ","):
            self.advance()
            items.append(self.value(numeric))
        self.expect("punct", "]", "',' or ']'")
        return tuple(items)

    def condition(self, numeric: bool) -> Condition:
        tok = self.tok
        if tok.kind == "op" and tok.text in COMPARISONS:
            self.advance()
            return Condition(tok.text, (self.value(numeric),))
        if self.at("word", "between"):
            self.advance()
            low = self.value(numeric)
            self.expect("word", "and", "'and'")
            return Condition("between", (low, self.value(numeric)))
        if self.at("word", "in"):
            self.advance()
            return Condition("in", self.values(numeric))
        if self.at("word", "not"):
            self.advance()
            self.expect("word", "in", "'in' after 'not'")
            return Condition("not in", self.values(numeric))
        if self.at("word", "matches") and not numeric:
            self.advance()
            return Condition("matches", (self.string('a quoted regular expression ("...")'),))
        raise self.fail(_NUMBER_OPS if numeric else _VALUE_OPS)

    def rule(self) -> Rule:
        tok = self.tok
        if tok.kind != "word":
            raise self.fail("a rule type such as IsComplete")
        if tok.text not in RULE_TYPES:
            lowered = {t.lower(): t for t in RULE_TYPES}
            close = difflib.get_close_matches(tok.text.lower(), lowered, n=1)
            suggestion = f"did you mean {lowered[close[0]]}? " if close else ""
            raise _error(
                self.text,
                tok.pos,
                f"unknown rule type {tok.text!r}",
                hint=f"{suggestion}supported rule types: {', '.join(RULE_TYPES)}",
            )
        self.advance()
        text = self.text
        rule: Rule
        match tok.text:
            case "IsComplete":
                rule = IsComplete(text, self.column())
            case "IsUnique":
                keys = [self.column()]
                while self.at("string"):
                    keys.append(self.column())
                rule = IsUnique(text, tuple(keys))
            case "ColumnValues":
                rule = ColumnValues(text, self.column(), self.condition(numeric=False))
            case "ColumnLength":
                rule = ColumnLength(text, self.column(), self.condition(numeric=True))
            case "ReferentialIntegrity":
                column = self.column()
                ref_tok = self.tok
                ref = self.string('a quoted reference ("table.column")')
                table, dot, ref_column = ref.partition(".")
                if not (dot and table.strip() and ref_column.strip()):
                    raise _error(text, ref_tok.pos, f'expected a reference "table.column", got {ref_tok.text}')
                cond_tok = self.tok
                cond = self.condition(numeric=True)
                if not all(0 <= v <= 1 for v in cond.operands):  # type: ignore[operator]
                    raise _error(text, cond_tok.pos, "expected a share of matching rows between 0 and 1")
                rule = ReferentialIntegrity(text, column, table, ref_column, cond)
            case "RowCount":
                rule = RowCount(text, self.condition(numeric=True))
            case _:  # CustomSql
                sql_tok = self.tok
                sql = self.string('a quoted SQL query ("SELECT ...")')
                if not sql.strip():
                    raise _error(text, sql_tok.pos, "empty SQL query")
                rule = CustomSql(text, sql, self.condition(numeric=True))
        if not self.at("end"):
            raise _error(text, self.tok.pos, f"unexpected {self.tok.describe()} after the end of the rule")
        return rule


def parse_rule(text: str) -> Rule:
    """Parse one DQDL rule; raise :class:`RuleSyntaxError` pointing at the offending column."""
    if not text.strip():
        raise RuleSyntaxError("empty rule", hint=f"supported rule types: {', '.join(RULE_TYPES)}")
    return _Parser(text).rule()
