"""Data-quality rules, their Great Expectations suites, quarantine and reports."""
