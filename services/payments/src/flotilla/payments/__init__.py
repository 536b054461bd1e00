"""payments: a stand-in payment provider with a real provider's idempotency (and faults).

Every charge is recorded once per ``Idempotency-Key`` and can be counted
(``GET /charges/summary``); faults are injected on demand (``PUT /faults``).
"""

from ._database import migrate
from ._faults import FaultInjector
from ._settings import PaymentsSettings
from .api.app import create_app
from .schemas import Faults

__all__ = ["FaultInjector", "Faults", "PaymentsSettings", "create_app", "migrate"]
