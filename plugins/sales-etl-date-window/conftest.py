"""Fixtures sales-etl provides for plugin authors: land_sales_file, validator_settings."""

pytest_plugins = ["sales_etl.validators.testing"]
