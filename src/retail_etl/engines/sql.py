"""The one place where the jobs' SQL (written once, in the DuckDB dialect) becomes Spark SQL.

``sqlglot`` transpiles from DuckDB to Spark; two dialect subclasses fix what it gets wrong or
what the engines do differently, so that both give the same rows (``tests/spark`` checks it):

- parsing: DuckDB's ``TRY_STRPTIME`` and ``ISOYEAR`` become sqlglot's typed nodes.
- ``TRY_CAST`` stays ``TRY_CAST`` (Spark runs in ANSI mode, where ``CAST`` raises). From text
  to a number it accepts what DuckDB accepts: ``_`` between digits, ASCII digits only, and
  for integers a decimal rounded half away from zero (but no ``0x``/``0b`` literals). To
  DATE/TIMESTAMP, ``/``, ``\\`` and space work as date separators, like ``-``, and any
  whitespace may precede the time. Still different without a declared format (where only
  DuckDB says yes): years of other than 4 digits, ``24:00:00``, ``epoch``/``infinity``.
- ``TRY_STRPTIME(x, fmt)`` becomes ``TRY_TO_TIMESTAMP`` with a Java pattern, guarded by a
  regular expression with DuckDB's digit counts (``%d`` takes 1-2 digits, ``%Y`` 1-4, ``%f``
  1-6); whitespace in the format matches any run of whitespace. Directives other than
  ``%Y %m %d %H %M %S %f %%`` are refused.
- ``/`` divides as DOUBLE (DuckDB's ``/`` does, even for decimals), and a quotient cast to
  DECIMAL is rounded the way DuckDB rounds a DOUBLE: half away from zero of ``x * 10^scale``
  computed in floating point. (Dividing by zero gives infinity in DuckDB, an error in Spark.)
- ISO weekday and ISO year: ``EXTRACT(DAYOFWEEK_ISO | YEAROFWEEK)`` (sqlglot's DAYOFWEEK
  arithmetic is off by one).
- ``json_object(k, v, ...)`` becomes ``to_json(named_struct(k, v, ...))``; with
  ``spark.sql.jsonGenerator.ignoreNullFields=false`` (set by the engine) NULLs stay ``null``.
- regular expressions (RE2 in DuckDB, Java in Spark): ``$`` becomes ``\\z`` (Java's ``$`` also
  matches before a final line break) and ``(?d)`` makes ``.`` stop at ``\\n`` only; syntax
  outside what both support (e.g. Java's lookarounds) is the user's to avoid.
"""

from __future__ import annotations

import functools
import re

import sqlglot
from sqlglot import exp
from sqlglot.dialects.duckdb import DuckDB
from sqlglot.dialects.spark import Spark

from retail_etl.errors import ConfigError


class _DuckDBSource(DuckDB):
    class Parser(DuckDB.Parser):
        FUNCTIONS = {
            **DuckDB.Parser.FUNCTIONS,
            "TRY_STRPTIME": lambda args: exp.StrToTime(this=args[0], format=args[1], safe=True),
            "ISOYEAR": lambda args: exp.Extract(this=exp.var("ISOYEAR"), expression=args[0]),
        }


def _lit(self: Spark.Generator, text: str) -> str:
    return self.sql(exp.Literal.string(text))


# The transforms below write the parts they add as text: nodes they built would be transformed again.

# -- TRY_CAST ---------------------------------------------------------------------------------------

_INTEGERS = (exp.DataType.Type.TINYINT, exp.DataType.Type.SMALLINT, exp.DataType.Type.INT, exp.DataType.Type.BIGINT)
_NOT_ASCII = r"[^\x00-\x7F]"
_DIGIT_UNDERSCORE = "(?<=[0-9])_(?=[0-9])"
_DATE_START = r"^\s*[0-9]{4}([-/ \\])[0-9]{1,2}\1[0-9]{1,2}"
_DATE_SEPARATORS = r"^\s*([0-9]{4})[-/ \\]([0-9]{1,2})[-/ \\]"
_DATE_TIME_GAP = r"^([0-9]{4}-[0-9]{1,2}-[0-9]{1,2})\s+(?=\S)"


def _number_text(self: Spark.Generator, e: exp.Expression) -> str:
    """``e`` as text DuckDB would read as a number: NULL if not ASCII, ``_`` between digits dropped."""
    text = f"CAST({self.sql(e)} AS STRING)"
    return (f"CASE WHEN NOT {text} RLIKE {_lit(self, _NOT_ASCII)} "
            f"THEN REGEXP_REPLACE({text}, {_lit(self, _DIGIT_UNDERSCORE)}, '') END")


def _date_text(self: Spark.Generator, e: exp.Expression) -> str:
    """``e`` with DuckDB's other date separators made ``-`` and any whitespace before the time
    one space; NULL unless it starts with a date."""
    text = f"CAST({self.sql(e)} AS STRING)"
    dashes = f"REGEXP_REPLACE({text}, {_lit(self, _DATE_SEPARATORS)}, '$1-$2-')"
    return (f"CASE WHEN {text} RLIKE {_lit(self, _DATE_START)} "
            f"THEN REGEXP_REPLACE({dashes}, {_lit(self, _DATE_TIME_GAP)}, '$1 ') END")


def _try_cast(self: Spark.Generator, e: exp.TryCast) -> str:
    to = e.to
    if to.is_type(*_INTEGERS):
        return f"TRY_CAST(ROUND(TRY_CAST({_number_text(self, e.this)} AS DECIMAL(38, 18))) AS {self.sql(to)})"
    if to.is_type(*exp.DataType.NUMERIC_TYPES):
        return f"TRY_CAST({_number_text(self, e.this)} AS {self.sql(to)})"
    if to.is_type(exp.DataType.Type.DATE):
        return f"CAST(TRY_CAST({_date_text(self, e.this)} AS TIMESTAMP_NTZ) AS DATE)"
    if to.is_type(exp.DataType.Type.TIMESTAMP, exp.DataType.Type.TIMESTAMPNTZ):
        return f"TRY_CAST({_date_text(self, e.this)} AS {self.sql(to)})"
    return self.cast_sql(e, safe_prefix="TRY_")


# -- strptime -----------------------------------------------------------------------------------------

_STRPTIME = {  # directive: (what DuckDB's strptime accepts, Java pattern)
    "Y": ("[0-9]{1,4}", "y"),
    "m": ("[0-9]{1,2}", "M"),
    "d": ("[0-9]{1,2}", "d"),
    "H": ("[0-9]{1,2}", "H"),
    "M": ("[0-9]{1,2}", "m"),
    "S": ("[0-9]{1,2}", "s"),
    "f": ("[0-9]{1,6}", "SSSSSS"),
}
_SPACE = r"[ \t\n\x0B\f\r]+"


def strptime_pattern(fmt: str) -> tuple[str, str]:
    """``(regex, java_pattern)`` for a DuckDB strptime format: the regex accepts what DuckDB
    accepts (once whitespace runs are one space), the pattern parses it."""
    regex, java, literal = ["^"], [], []

    def flush() -> None:
        if literal:
            java.append("'" + "".join(literal).replace("'", "''") + "'")
            literal.clear()

    i = 0
    while i < len(fmt):
        c = fmt[i]
        if c == "%" and fmt[i + 1 : i + 2] != "%":
            directive = fmt[i + 1 : i + 2]
            if directive not in _STRPTIME:
                raise ConfigError(
                    f"date format {fmt!r}: %{directive} is not supported by the Spark engine",
                    hint="use %Y %m %d %H %M %S %f and literal text, or engine.name: duckdb",
                )
            flush()
            regex.append(_STRPTIME[directive][0])
            java.append(_STRPTIME[directive][1])
            i += 2
        elif c.isspace():
            while i < len(fmt) and fmt[i].isspace():
                i += 1
            regex.append(" ")
            literal.append(" ")
        else:
            regex.append(re.escape(c))
            literal.append(c)
            i += 2 if c == "%" else 1  # '%%' is a literal '%'
    flush()
    return "".join(regex) + "$", "".join(java)


def _str_to_time(self: Spark.Generator, e: exp.StrToTime | exp.StrToDate) -> str:
    fmt = e.args["format"]
    if not isinstance(fmt, exp.Literal):
        raise ConfigError("a date format must be a literal string on the Spark engine")
    regex, pattern = strptime_pattern(fmt.name)
    text = f"REGEXP_REPLACE({self.sql(e, 'this')}, {_lit(self, _SPACE)}, ' ')"
    if e.args.get("safe"):
        parsed = f"CASE WHEN {text} RLIKE {_lit(self, regex)} THEN TRY_TO_TIMESTAMP({text}, {_lit(self, pattern)}) END"
    else:
        parsed = f"TO_TIMESTAMP({text}, {_lit(self, pattern)})"
    return f"CAST({parsed} AS DATE)" if isinstance(e, exp.StrToDate) else parsed


# -- division ------------------------------------------------------------------------------------------


def _div(self: Spark.Generator, e: exp.Div) -> str:
    return f"CAST({self.sql(e, 'this')} AS DOUBLE) / CAST({self.sql(e, 'expression')} AS DOUBLE)"


def _cast(self: Spark.Generator, e: exp.Cast) -> str:
    to, value = e.to, e.this
    while isinstance(value, exp.Paren):
        value = value.this
    if isinstance(value, exp.Div) and to.is_type(exp.DataType.Type.DECIMAL) and len(to.expressions) == 2:
        # Round x * 10^s half away from zero in DOUBLE, as DuckDB does; then exact digits.
        scale = int(to.expressions[1].name)
        scaled = f"({self.sql(e, 'this')}) * 1E{scale}"
        digits = f"CAST(CAST(SIGN({scaled}) * FLOOR(ABS({scaled}) + 0.5) AS BIGINT) AS STRING)"
        return f"CAST(CONCAT({digits}, 'E-{scale}') AS {self.sql(to)})"
    return self.cast_sql(e)


# -- the rest ------------------------------------------------------------------------------------------

_SPARK_PARTS = {"ISOYEAR": "YEAROFWEEK", "ISODOW": "DAYOFWEEK_ISO"}


def _extract(self: Spark.Generator, e: exp.Extract) -> str:
    part = _SPARK_PARTS.get(e.name.upper(), e.name.upper())
    return f"EXTRACT({part} FROM {self.sql(e, 'expression')})"


def _json_object(self: Spark.Generator, e: exp.JSONObject) -> str:
    pairs = [x for kv in e.expressions for x in (kv.this, kv.expression)]
    return self.func("TO_JSON", exp.func("NAMED_STRUCT", *pairs))


def java_regex(pattern: str) -> str:
    """An RE2 pattern (DuckDB) as a Java pattern that matches the same strings."""
    out, in_class, i = ["(?d)"], False, 0
    while i < len(pattern):
        c = pattern[i]
        if c == "\\":
            out.append(pattern[i : i + 2])
            i += 2
            continue
        if in_class:
            in_class = c != "]"
        elif c == "[":
            in_class = True
            first = i + 1 + (pattern[i + 1 : i + 2] == "^")
            if pattern[first : first + 1] == "]":  # a ']' first in a class is a literal
                out.append(pattern[i : first + 1])
                i = first + 1
                continue
        elif c == "$":
            c = r"\z"
        out.append(c)
        i += 1
    return "".join(out)


def _regexp_like(self: Spark.Generator, e: exp.RegexpLike) -> str:
    pattern = e.expression
    if isinstance(pattern, exp.Literal) and pattern.is_string:
        pattern = exp.Literal.string(java_regex(pattern.name))
    return f"{self.sql(e, 'this')} RLIKE {self.sql(pattern)}"


class _SparkTarget(Spark):
    class Generator(Spark.Generator):
        TRANSFORMS = {
            **Spark.Generator.TRANSFORMS,
            exp.TryCast: _try_cast,
            exp.Cast: _cast,
            exp.Div: _div,
            exp.StrToTime: _str_to_time,
            exp.StrToDate: _str_to_time,
            exp.Extract: _extract,
            exp.DayOfWeekIso: lambda self, e: f"EXTRACT(DAYOFWEEK_ISO FROM {self.sql(e, 'this')})",
            exp.JSONObject: _json_object,
            exp.RegexpLike: _regexp_like,
        }


@functools.lru_cache(maxsize=4096)
def to_spark(sql: str) -> str:
    """``sql`` (one DuckDB statement) as Spark SQL."""
    return sqlglot.transpile(sql, read=_DuckDBSource, write=_SparkTarget)[0]
