"""The outside world, each behind one module: PostgreSQL (source_db), the object store
(object_store), the Spark session and every Spark/S3A/JDBC setting (spark_session), Parquet files
written from Arrow (parquet_files) and the Pushgateway (metrics).

Imports only deep_storage.core; knows nothing of tables, Delta or quality rules."""
