"""What a log record carries beyond the standard fields (its ``extra=``), as the JSON line and
the OTLP export show it.

Some libraries put their plumbing there: kopf adds its whole ``OperatorSettings`` and an
event-posting flag to every line about an object, uvicorn an ANSI-coloured copy of the
message. Those are dropped from both outputs. OpenTelemetry attributes take only strings,
booleans, numbers and lists of them, and warn once a record about anything else (a line of
its own, about a line): a mapping such as kopf's ``k8s_ref`` is exported as one attribute
per key (``k8s_ref.kind``, ``k8s_ref.name``…), any other value as its text.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

#: attributes every LogRecord has; anything else was passed with ``extra=``
STANDARD_FIELDS = frozenset(
    vars(logging.LogRecord("", 0, "", 0, "", None, None)).keys() | {"message", "asctime"}
)
#: a library's plumbing, not information (see the module docstring)
PLUMBING = frozenset({"color_message", "settings", "k8s_skip"})
_PRIMITIVES = (str, bool, int, float)


def extra_fields(record: logging.LogRecord) -> dict[str, Any]:
    """The record's own fields (``extra=``), without the plumbing."""
    return {
        key: value
        for key, value in vars(record).items()
        if key not in STANDARD_FIELDS and key not in PLUMBING and not key.startswith("_")
    }


def _attribute(value: Any) -> Any:
    if value is None or isinstance(value, _PRIMITIVES):
        return value
    if isinstance(value, list | tuple) and all(isinstance(v, _PRIMITIVES) for v in value):
        return list(value)
    return str(value)


def as_attributes(record: logging.LogRecord) -> None:
    """Make ``record``'s extra fields valid OpenTelemetry attributes, in place (the export
    handler comes after the JSON one, which has already written the line)."""
    fields = vars(record)
    for key in PLUMBING & fields.keys():
        del fields[key]
    for key, value in extra_fields(record).items():
        if isinstance(value, Mapping):
            del fields[key]
            for inner, item in value.items():
                fields[f"{key}.{inner}"] = _attribute(item)
        else:
            fields[key] = _attribute(value)
