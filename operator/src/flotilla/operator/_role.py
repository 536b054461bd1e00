"""Which replica acts: kopf's peering, watched from outside, so a standby says it is one.

Two replicas run; kopf lets the one with the highest priority act and pauses the other. kopf
does not tell its host which it is, so this reads the ``KopfPeering`` lease as kopf does: a
replica acts when it holds a lease and no other live lease (``lastseen`` + ``lifetime`` still
ahead) has a priority as high as its own. The answer goes to the ``flotilla_operator_active``
gauge (1 or 0 on every replica's ``/metrics``), to ``/readyz``'s body, and to the pod's label
``flotilla.dev/operator-role`` (``active`` / ``standby``), which the metrics Service selects,
so a scrape or a port-forward through it reaches the replica with the numbers.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from ._kube import KubeApi, KubeError

logger = logging.getLogger(__name__)

ROLE_LABEL = "flotilla.dev/operator-role"
ACTIVE, STANDBY = "active", "standby"


def acts(peers: Mapping[str, Any], identity: str, priority: int, now: datetime) -> bool:
    """kopf's rule on a ``KopfPeering``'s ``status``: whether ``identity`` acts at ``now``."""
    if not peers.get(identity):
        return False  # kopf starts paused, until it has announced itself
    for other, lease in peers.items():
        if other == identity or not lease:
            continue
        try:
            seen = datetime.fromisoformat(str(lease["lastseen"]))
            alive = seen + timedelta(seconds=int(lease.get("lifetime", 60))) > now
            higher = int(lease.get("priority", 0)) >= priority
        except (KeyError, TypeError, ValueError):
            continue  # not a lease kopf wrote
        if alive and higher:
            return False
    return True


class PeeringRole:
    """Keeps :attr:`role` in step with the peering, every ``every_s`` seconds.

    Args:
        api: the operator's API client.
        peering: ``(namespace, name)`` of the ``KopfPeering`` (None: standalone, always active).
        identity: the identity kopf was given.
        priority: the priority kopf was given.
        pod: ``(namespace, name)`` of this replica's pod, to label (None outside a pod).
        on_change: called with the new role.
    """

    def __init__(
        self,
        api: KubeApi,
        *,
        peering: tuple[str, str] | None,
        identity: str,
        priority: int,
        pod: tuple[str, str] | None,
        on_change: Any = None,
        every_s: float = 2.0,
    ) -> None:
        self.api = api
        self.peering, self.identity, self.priority, self.pod = peering, identity, priority, pod
        self.on_change = on_change
        self.every_s = every_s
        self.role = ACTIVE if peering is None else STANDBY
        self._labelled: str | None = None
        self._label_error: str | None = None

    async def run(self) -> None:
        """Follow the peering until cancelled (the first round labels the pod at once)."""
        while True:
            try:
                await self.update()
            except Exception:  # NOTE: a background task must not die unseen; next round
                logger.exception("could not follow the peering role")
            await asyncio.sleep(self.every_s)

    async def update(self) -> None:
        if not self.api.credentials.accepted:
            return  # NOTE: the login retries with growing pauses; this would ask every round
        role = self.role
        if self.peering is not None:
            try:
                body = await self.api.peering(*self.peering)
            except KubeError as exc:
                logger.debug("cannot read the peering %s/%s: %s", *self.peering, exc)
                body = None
            if body is not None:
                peers = body.get("status") or {}
                now = datetime.now(UTC)
                role = ACTIVE if acts(peers, self.identity, self.priority, now) else STANDBY
        if role != self.role:
            logger.info("this replica is %s now", role, extra={"identity": self.identity})
            self.role = role
        if self.on_change is not None:
            self.on_change(role)
        await self._label(role)

    async def _label(self, role: str) -> None:
        if self.pod is None or self._labelled == role:
            return
        try:
            await self.api.label_pod(*self.pod, {ROLE_LABEL: role})
            self._labelled, self._label_error = role, None
        except KubeError as exc:
            if str(exc) != self._label_error:  # once per reason, not every round
                self._label_error = str(exc)
                logger.warning("cannot label this pod %s/%s as %s: %s", *self.pod, role, exc)
