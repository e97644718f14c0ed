"""The line every benchmark prints first: machine, load, versions, time."""

from __future__ import annotations

import os
import platform
import time
from types import ModuleType


def machine_line(*modules: ModuleType) -> str:
    """`machine: <platform>, <n> CPUs (load average ...); Python x, <module> y, ...; <time>`."""
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg()) if hasattr(os, "getloadavg") else "?"
    versions = ", ".join(f"{m.__name__} {m.__version__}" for m in modules)
    return (
        f"machine: {platform.platform()}, {os.cpu_count()} CPUs (load average {load}); "
        f"Python {platform.python_version()}, {versions}; {time.strftime('%Y-%m-%d %H:%M %Z')}"
    )
