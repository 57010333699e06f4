"""Version of the project, reported by `/version`, the CLIs and the build-info metric."""

from __future__ import annotations

VERSION = "0.1.0"
# What we tell peers we are: the original dfget/supernode version we are wire-compatible with.
COMPAT_VERSION = "1.0.6"
