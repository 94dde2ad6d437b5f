"""Signoff: human sign-off for the tool calls of OpenAI agents."""
