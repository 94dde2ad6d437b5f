"""Adapters: the outside world (Handover, OpenAI, SQS, Secrets Manager) behind the core's ports."""
