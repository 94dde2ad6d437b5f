"""Drills: crash injection and the crash matrix, used by `make reliability` and the tests."""
