"""Receivers a client of Signoff would run, for the local stack and the tests."""
