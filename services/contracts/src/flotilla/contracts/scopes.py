"""The scopes a caller may hold: the contract between the edge's route table (which route
needs which scope) and the services (orders lets an operator see every client's orders).
The edge authenticates and forwards them in ``X-Client-Scopes`` (``flotilla.core``'s headers;
docs/security.md). Standard library only."""

from __future__ import annotations

#: What customers' keys (and the local API key) may do.
CUSTOMER_SCOPES = ("orders:read", "orders:write", "inventory:read")
#: Lets a caller see and cancel every client's orders.
OPERATOR_SCOPE = "orders:admin"
#: What the operator's key may do: a customer's scopes and the operator's.
OPERATOR_SCOPES = (*CUSTOMER_SCOPES[:2], OPERATOR_SCOPE, *CUSTOMER_SCOPES[2:])
