"""The outside world, each system behind its modules: PostgreSQL (source_db: connections and
metadata queries; source_copy: the rows in bulk, binary COPY into Arrow, streamed into Parquet),
the object store (object_store), the Spark session and every Spark, S3A, Delta and JDBC setting
(spark_session), Parquet files written from Arrow (parquet_files) and the Pushgateway (metrics).

Imports only deep_storage.core; holds no table's rules, no commit logic and no quality rule."""
