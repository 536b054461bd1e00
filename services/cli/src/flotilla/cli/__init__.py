"""The ``flotilla`` command: runs the platform locally as processes; never imports a service."""

from ._broker import BrokerChoice, BrokerStartError, choose_broker
from ._platform import PortTaken, check_ports, ensure_api_key, platform_specs
from ._settings import CliSettings
from ._supervisor import ProcessSpec, StartError, Supervisor
from ._traces import trace_tree

__all__ = [
    "BrokerChoice",
    "BrokerStartError",
    "CliSettings",
    "PortTaken",
    "ProcessSpec",
    "StartError",
    "Supervisor",
    "check_ports",
    "choose_broker",
    "ensure_api_key",
    "platform_specs",
    "trace_tree",
]
