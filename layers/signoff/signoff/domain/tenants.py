"""Tenants: every client key belongs to one, and every conversation (with its approvals, grants
and budgets) to its creator's. One tenant never sees or changes another's.

The keys secret holds one ``<tenant>:<key>`` per line; a line without a colon is tenant
``default``, so a secret from before tenants keeps working.
"""

from __future__ import annotations

import re

DEFAULT_TENANT = "default"
TENANT_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,62}$")


class InvalidKeyLine(ValueError):
    """A line of the keys secret names a tenant that is not a valid name."""


def parse_key_line(line: str) -> tuple[str, str] | None:
    """``(tenant, key)`` of one line (None for a blank line)."""
    line = line.strip()
    if not line:
        return None
    tenant, sep, key = line.partition(":")
    if not sep:
        return DEFAULT_TENANT, line
    tenant, key = tenant.strip(), key.strip()
    if not TENANT_NAME.fullmatch(tenant) or not key:
        raise InvalidKeyLine("a keys line must be '<tenant>:<key>' with a lower-case tenant name")
    return tenant, key
