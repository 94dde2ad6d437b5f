"""Use cases: what happens on each request, message and schedule tick. No AWS or OpenAI imports."""
