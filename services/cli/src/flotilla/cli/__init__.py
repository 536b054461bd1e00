"""The ``flotilla`` command: runs the platform locally as processes; never imports a service.

For tests and scripts, :class:`Platform` starts and stops the whole platform in-process (any
ports, any state folder); ``flotilla up`` prints ``flotilla: platform ready`` when it is up.
"""

from ._broker import BrokerChoice, BrokerStartError, choose_broker
from ._catalogue import CatalogueUnavailable, sku_in_stock
from ._keys import ensure_api_key
from ._platform import (
    Platform,
    PlatformError,
    PortTaken,
    check_ports,
    run_platform,
)
from ._process_spec import ProcessSpec
from ._processes import platform_specs
from ._settings import CliSettings
from ._supervisor import (
    RestartPolicy,
    StartError,
    StartInterrupted,
    Supervisor,
    describe_exit,
)
from ._traces import trace_tree

__all__ = [
    "BrokerChoice",
    "BrokerStartError",
    "CatalogueUnavailable",
    "CliSettings",
    "Platform",
    "PlatformError",
    "PortTaken",
    "ProcessSpec",
    "RestartPolicy",
    "StartError",
    "StartInterrupted",
    "Supervisor",
    "check_ports",
    "choose_broker",
    "describe_exit",
    "ensure_api_key",
    "platform_specs",
    "run_platform",
    "sku_in_stock",
    "trace_tree",
]
