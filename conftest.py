# The service fixtures (PostgreSQL, SeaweedFS S3, Spark) serve tests/ and components/*/tests/.
pytest_plugins = ["tests.fixtures"]
