"""Semantic checks run at load time, so bad configuration fails before any data is touched."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from retail_etl.config.model import Config
from retail_etl.errors import ConfigError


def check_config(config: Config, file: Path, lines: Mapping[tuple[str, ...], int]) -> None:
    """Plan every source's mapping and rules; re-raise problems with ``file:line: key`` locations."""
    from retail_etl.config.loader import locate
    from retail_etl.quality.ruleset import RuleConfigError, source_rules
    from retail_etl.sources.mapping import MappingError, plan_source

    if not config.sources:
        raise ConfigError("declare at least one source", location=locate(file, lines, ("sources",)))
    if len(config.sources_of("products")) > 1:
        raise ConfigError("declare at most one products source", location=locate(file, lines, ("sources",)))
    for name, source in config.sources.items():
        try:
            plan_source(name, source)
            rules = source_rules(source)
        except (MappingError, RuleConfigError) as exc:
            raise ConfigError(
                exc.message, location=locate(file, lines, ("sources", name, *exc.path)), hint=exc.hint
            ) from None
        for index, rule in enumerate(rules):
            table = getattr(rule.rule, "ref_table", None)
            if table is not None:
                if not config.sources_of(table):
                    raise ConfigError(
                        f"rule {rule.rule.text!r} refers to {table!r}, but no source has entity: {table}",
                        location=locate(file, lines, ("sources", name, "rules", str(index))),
                        hint="declare the reference source (e.g. products) or remove the rule",
                    )
