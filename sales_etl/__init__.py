"""sales-etl: nightly sales CSV files -> validated Spark data marts and reporting tables."""

__version__ = "0.1.0"
