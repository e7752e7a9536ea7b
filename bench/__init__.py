"""Load benchmarks: scripts to run by hand (`python bench/<name>.py`), not tests."""
