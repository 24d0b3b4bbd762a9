"""The tables and how each is built: bronze (the source's rows, exact, one commit per UTC day;
its default engine is io/source_copy.py) and silver (the stop_executions projection rebuilt from
bronze; projection holds the rules, silver_task the work one Spark task does).

Builds on deep_storage.lake (every write is a commit under the writer lease), io and core."""
