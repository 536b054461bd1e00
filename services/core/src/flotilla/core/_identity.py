"""Who a request is for, as the edge tells the services behind it.

The edge authenticates the caller and replaces whatever the client sent in these headers with
its own; services behind it (reachable only from the edge: NetworkPolicies in the cluster,
loopback locally) read them to scope data to the caller. The scope names themselves are the
domain's (``flotilla.contracts.scopes``, docs/security.md).
"""

from __future__ import annotations

#: The authenticated client (``key:<name>`` or ``jwt:<sub>``).
CLIENT_ID_HEADER = "X-Client-Id"
#: The client's scopes, space-separated.
CLIENT_SCOPES_HEADER = "X-Client-Scopes"
