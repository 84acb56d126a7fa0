"""The pipeline's steps — validate, transform, analytics — and a run that chains them.

Each step is a function of (configuration, lake, run id, inputs) returning a typed result
(:mod:`.results`); it writes all its Parquet files first, then gives each table it changes ONE
Iceberg commit that replaces what it re-derives (:mod:`.tableio`); a step that fails before its
commits deletes its files and commits nothing. Steps hand work to each other through the state
journal:
- validate (:mod:`.validate`): new raw files → products, sales_validated, validate-stage quarantine
  (replaced by source file) and their quality figures; journals the sale dates the batch touches
  for transform, then commits, then bookmarks the files;
- transform (:mod:`.transform`): journaled dates → sales_enriched and transform-stage quarantine
  (replaced by date), recomputed from all validated lines of those dates; journals them for analytics;
- analytics (:mod:`.analytics`): journaled dates → the marts (replaced by date).
A step journals for the next one before its own commits, and clears its own journal only
after them, so a run killed at any moment is completed by the next run, and re-running any
step is harmless.
"""

from __future__ import annotations

from retail_etl.lake.lake import Lake
from retail_etl.pipeline.analytics import analytics_step
from retail_etl.pipeline.execution import STEPS, pipeline_steps, run, run_result
from retail_etl.pipeline.results import (
    AnalyticsResult, RunInputs, RunResult, SourceFigures, TransformResult, ValidateResult,
)
from retail_etl.pipeline.transform import transform_step
from retail_etl.pipeline.validate import validate_step

__all__ = [
    "STEPS", "AnalyticsResult", "Lake", "RunInputs", "RunResult", "SourceFigures", "TransformResult",
    "ValidateResult", "analytics_step", "pipeline_steps", "run", "run_result", "transform_step", "validate_step",
]
