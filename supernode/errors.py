"""Errors the service raises; the web middleware maps each to a status code and body once."""

from __future__ import annotations

import json

from supernode.protocol.codes import DfErrorCode


class SupernodeError(Exception):
    """Base. `status` is the HTTP status of the reply; `df_code` the internal DfError code."""

    status = 500
    df_code = DfErrorCode.SYSTEM_ERROR

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def df_text(self) -> str:
        """The Go `DfError.Error()` form: `{"Code":n,"Msg":"..."}`."""
        return json.dumps({"Code": int(self.df_code), "Msg": self.message}, separators=(",", ":"))


class BadRequest(SupernodeError):
    status = 400
    df_code = DfErrorCode.INVALID_VALUE


class NotFound(SupernodeError):
    """Unknown id. The Go supernode answers most of these with 500; routes pick the status."""

    status = 404
    df_code = DfErrorCode.DATA_NOT_FOUND


class InvalidValue(SupernodeError):
    df_code = DfErrorCode.INVALID_VALUE


class TaskConflict(SupernodeError):
    df_code = DfErrorCode.TASK_ID_CONFLICT


class UrlNotReachable(SupernodeError):
    df_code = DfErrorCode.URL_NOT_REACHABLE


class AuthenticationRequired(SupernodeError):
    df_code = DfErrorCode.AUTHENTICATION_REQUIRED


class Overloaded(SupernodeError):
    status = 500
