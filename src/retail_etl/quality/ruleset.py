"""A source's quality rules: parsed, given unique ids, and checked against the canonical model (pure)."""

from __future__ import annotations

from dataclasses import dataclass

from retail_etl.config.model import SourceConfig
from retail_etl.errors import ConfigError, RuleSyntaxError
from retail_etl.model import ENTITIES
from retail_etl.quality.dqdl import Rule, parse_rule


class RuleConfigError(ConfigError):
    """A rule problem; ``path`` is the config key path below the source."""


@dataclass(frozen=True)
class SourceRule:
    """A parsed rule of a source with its id and severity."""

    id: str
    severity: str  # quarantine | warn | fail
    rule: Rule

    @property
    def row_level(self) -> bool:
        return self.rule.row_level


def source_rules(source: SourceConfig) -> list[SourceRule]:
    """Parse and check ``source.rules``; raises :class:`RuleConfigError` naming the rule's index."""
    entity = ENTITIES[source.entity]
    names = [*entity.names, *source.attributes]
    out: list[SourceRule] = []
    used: set[str] = set()
    for index, spec in enumerate(source.rules):
        where = ("rules", str(index))
        try:
            rule = parse_rule(spec.rule)
        except RuleSyntaxError as exc:
            raise RuleConfigError(exc.message, where, hint=exc.hint) from None
        for column in rule.columns:
            if column not in names:
                import difflib

                close = difflib.get_close_matches(column, names, n=1)
                raise RuleConfigError(
                    f"rule {spec.rule!r} uses {column!r}, which is not a canonical {entity.name} column",
                    where,
                    hint=(f"did you mean {close[0]!r}? " if close else "") + "rules use canonical column names",
                )
        if not rule.row_level and spec.severity == "quarantine":
            raise RuleConfigError(
                f"{rule.kind} is a dataset-level rule: it cannot quarantine rows",
                where,
                hint="give it `severity: warn` or `severity: fail`",
            )
        rule_id = spec.id or rule.default_id
        if rule_id in used:
            if spec.id:
                raise RuleConfigError(f"rule id {rule_id!r} is used twice", where)
            n = 2
            while f"{rule_id}.{n}" in used:
                n += 1
            rule_id = f"{rule_id}.{n}"
        used.add(rule_id)
        out.append(SourceRule(rule_id, spec.severity, rule))
    return out
