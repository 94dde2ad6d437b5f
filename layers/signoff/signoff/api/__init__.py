"""The HTTP edge: request models, body parsing and the JSON error shape shared by the handlers."""
