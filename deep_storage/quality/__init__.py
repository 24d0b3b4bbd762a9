"""Data quality: the rules and their levels (rules, rule_columns), what the gate judges of a day
from its commit facts (day_plan), the two engines that judge the rows (duckdb_rules in this
process, spark_rules on Spark; both through Great Expectations in gx_runner, and file_types for
the contract's types on the files' own footers), the gate that runs them, quarantines and writes
the results (validate), a day unchanged since its last verdict (unchanged), the verdict itself,
the one place that decides fail or warn (verdict), and the report page (report_page).

The top of the library below the entry points: reads the tables through deep_storage.lake and
never changes a table's rows (the log is the truth: rules flag rows, they never remove one)."""
