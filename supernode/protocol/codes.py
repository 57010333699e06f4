"""Result codes, piece results, dfget-task statuses and CDN statuses of the 0.1 protocol (§4)."""

from __future__ import annotations

from enum import IntEnum, StrEnum


class ResultCode(IntEnum):
    """`code` of the ResultInfo envelope (`pkg/constants/dfget_super_code.go`)."""

    SUCCESS = 200
    SYSTEM_ERROR = 500
    PARAM_ERROR = 501
    TARGET_NOT_FOUND = 502
    PEER_FINISH = 600
    PEER_CONTINUE = 601
    PEER_WAIT = 602
    PEER_LIMITED = 603
    SUPER_FAIL = 604
    UNKNOWN_ERROR = 605
    TASK_CONFLICT = 606
    URL_NOT_REACHABLE = 607
    NEED_AUTH = 608
    WAIT_AUTH = 609
    SOURCE_ERROR = 610
    GET_PIECE_REPORT = 611
    GET_PEER_DOWN = 612


class PieceResult(IntEnum):
    """`result` query value of `/peer/task`: the outcome of the last piece."""

    FAILED = 500
    SUCCESS = 501
    INVALID = 502
    SEMISUC = 503


class PullStatus(IntEnum):
    """`status` query value of `/peer/task`: where the dfget-task stands."""

    STARTED = 700
    RUNNING = 701
    FINISHED = 702


class CdnStatus(StrEnum):
    WAITING = "WAITING"
    RUNNING = "RUNNING"
    FAILED = "FAILED"
    SUCCESS = "SUCCESS"
    SOURCE_ERROR = "SOURCE_ERROR"


class DfgetTaskStatus(StrEnum):
    WAITING = "WAITING"
    RUNNING = "RUNNING"
    SUCCESS = "SUCCESS"
    FAILED = "FAILED"


class PeerPattern(StrEnum):
    P2P = "p2p"
    CDN = "cdn"
    SOURCE = "source"


class CdnPattern(StrEnum):
    LOCAL = "local"
    SOURCE = "source"


class ClientErrorType(StrEnum):
    FILE_NOT_EXIST = "FILE_NOT_EXIST"
    FILE_MD5_NOT_MATCH = "FILE_MD5_NOT_MATCH"


class DfErrorCode(IntEnum):
    """Internal `DfError` codes; they appear inside error messages as `{"Code":n,"Msg":...}`."""

    DATA_NOT_FOUND = 0
    EMPTY_VALUE = 1
    INVALID_VALUE = 2
    NOT_INITIALIZED = 3
    CONVERT_FAILED = 4
    RANGE_NOT_SATISFIABLE = 5
    SYSTEM_ERROR = 6
    CDN_FAIL = 7
    CDN_WAIT = 8
    PEER_WAIT = 9
    UNKNOWN = 10
    PEER_CONTINUE = 11
    URL_NOT_REACHABLE = 12
    TASK_ID_CONFLICT = 13
    AUTHENTICATION_REQUIRED = 14


# How an internal error maps to a pull result code (`supernode/server/result_info.go`).
RESULT_FOR_DF_ERROR: dict[DfErrorCode, ResultCode] = {
    DfErrorCode.EMPTY_VALUE: ResultCode.PARAM_ERROR,
    DfErrorCode.INVALID_VALUE: ResultCode.PARAM_ERROR,
    DfErrorCode.DATA_NOT_FOUND: ResultCode.TARGET_NOT_FOUND,
    DfErrorCode.PEER_WAIT: ResultCode.PEER_WAIT,
    DfErrorCode.PEER_CONTINUE: ResultCode.PEER_CONTINUE,
    DfErrorCode.URL_NOT_REACHABLE: ResultCode.URL_NOT_REACHABLE,
}

# Codes a Go dfget accepts from a pull without migrating to another supernode (§3.8).
PULL_ACCEPTED_CODES = frozenset({600, 601, 602, 603, 200})
