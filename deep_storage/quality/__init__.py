"""Data quality: the rules and their levels (rules, rule_columns), what the gate judges of a day
from its commit facts (day_plan), the engines that judge the rows (duckdb_rules, or Great
Expectations on Spark through gx_runner; file_types for the contract's types), the gate that runs
them, quarantines and writes the results (validate), a day unchanged since its last verdict
(unchanged), the verdict itself (verdict) and the report page (report_page).

The top of the library below the entry points: reads the tables through deep_storage.lake and
never changes a table's rows (the log is the truth: rules flag rows, they never remove one)."""
