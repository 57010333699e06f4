"""Typed keys of the objects shared through the aiohttp application."""

from __future__ import annotations

from collections.abc import Callable

from aiohttp import web

from supernode.config import SupernodeConfig
from supernode.metrics import SupernodeMetrics
from supernode.service import SupernodeService

CONFIG = web.AppKey("config", SupernodeConfig)
METRICS = web.AppKey("metrics", SupernodeMetrics)
SERVICE = web.AppKey("service", SupernodeService)
CLOCK = web.AppKey("clock", Callable[[], float])
