"""Data quality: the rules and their levels (rules, rule_columns), the engines that judge a day's
rows (duckdb_rules, or Great Expectations on Spark through gx_runner), the gate that runs them
and writes the verdict, quarantine and reports (validate), and the report page (report_page).

The top of the library below the entry points: reads the tables through deep_storage.lake and
never changes a table's rows (the log is the truth: rules flag rows, they never remove one)."""
