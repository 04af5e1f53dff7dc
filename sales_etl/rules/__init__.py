"""The business rules, pure: no Prefect, no storage, no database (issue 17).

- :mod:`sales_etl.rules.transform`: the row rules (which rows load, which are quarantined and
  why), the marts' shapes and the month totals and partial aggregates the reporting tables are
  recomputed from; Spark DataFrames in, DataFrames out, configuration as arguments.
- :mod:`sales_etl.rules.incentives`: who earns the monthly incentive, in exact decimals.

The Prefect tasks in ``tasks/`` (``sales_etl.tasks``) read and write the stores and the
database around them. Every rule is tested on tiny in-memory inputs (tests/test_transform.py,
tests/test_incentives.py, tests/test_properties.py).
"""
