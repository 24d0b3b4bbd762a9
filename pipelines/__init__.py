"""KFP pipelines of deep-storage."""
