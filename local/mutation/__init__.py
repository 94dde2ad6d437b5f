"""``make mutation``: mutmut over the domain and the use cases, scored by the fast unit tests."""
