"""``/faults``: the faults the stand-in injects, read and changed while it runs."""

from __future__ import annotations

import logging

from flotilla.core.fastapi import ServiceRouter

from ...schemas import Faults
from ..deps import Injector

logger = logging.getLogger(__name__)
router = ServiceRouter(prefix="/faults", tags=["faults"])


@router.get("")
def get_faults(faults: Injector) -> Faults:
    """The faults injected now."""
    return faults.faults


@router.put("")
def put_faults(body: Faults, faults: Injector) -> Faults:
    """Inject these faults from now on (every field; omitted ones go back to none)."""
    logger.warning("faults changed", extra={"faults": body.model_dump()})
    return faults.replace(body)
