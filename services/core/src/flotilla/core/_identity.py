"""Who a request is for, as the edge tells the services behind it.

The edge authenticates the caller and replaces whatever the client sent in these headers with
its own; services behind it (reachable only from the edge: NetworkPolicies in the cluster,
loopback locally) read them to scope data to the caller. The scope names are the contract
between the edge's route table and the services (docs/security.md).
"""

from __future__ import annotations

#: The authenticated client (``key:<name>`` or ``jwt:<sub>``).
CLIENT_ID_HEADER = "X-Client-Id"
#: The client's scopes, space-separated.
CLIENT_SCOPES_HEADER = "X-Client-Scopes"

#: What customers' keys (and the local API key) may do.
CUSTOMER_SCOPES = ("orders:read", "orders:write", "inventory:read")
#: Lets a caller see and cancel every client's orders.
OPERATOR_SCOPE = "orders:admin"
