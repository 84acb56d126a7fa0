"""retail-etl: a batch ETL pipeline for retail sales data."""

__version__ = "0.1.0"
