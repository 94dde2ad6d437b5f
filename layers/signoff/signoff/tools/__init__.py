"""Tool sets shipped with Signoff."""
