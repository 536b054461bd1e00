"""The console's web pages: recent traces, a trace's waterfall, the worker pools."""

from ._pages import router, static_files

__all__ = ["router", "static_files"]
