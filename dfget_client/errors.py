"""Exit codes, back-to-source reasons and the exceptions dfget translates lower layers into."""

from __future__ import annotations

from enum import IntEnum, StrEnum


class ExitCode(IntEnum):
    """`dfget/config/constants.go`; the process exits with these values modulo 256."""

    SUCCESS = 0
    CONFIG = 1
    LAUNCH_SERVER = 1100
    PREPARE = 1101
    GET_USER = 1102
    REGISTER = 1103
    DOWNLOAD = 1104


class BackSourceReason(IntEnum):
    """Why a download went to the origin (`backsourceReason` of `/task/metrics`)."""

    NONE = 0
    REGISTER_FAIL = 1
    MD5_NOT_MATCH = 2
    DOWNLOAD_ERROR = 3
    NO_SPACE = 4
    INIT_ERROR = 5
    WRITE_ERROR = 6
    HOST_SYS_ERROR = 7
    NODE_EMPTY = 8
    SOURCE_ERROR = 10
    USER_SPECIFIED = 100


# Added to the reason when back-to-source is refused (`--notbs`).
FORCE_NOT_BACK_SOURCE = 1000


class PieceErrorKind(StrEnum):
    NOT_FOUND = "not-found"  # the uploader answered 404: reported as FILE_NOT_EXIST
    MD5_MISMATCH = "md5-mismatch"  # reported as FILE_MD5_NOT_MATCH
    BAD_FRAME = "bad-frame"  # header/trailer/length do not match the piece
    HTTP_STATUS = "http-status"
    UNREACHABLE = "unreachable"
    TIMEOUT = "timeout"


class DfgetError(Exception):
    """A failure the CLI reports as one line and maps to an exit code."""

    exit_code: ExitCode = ExitCode.DOWNLOAD


class ConfigError(DfgetError):
    exit_code = ExitCode.CONFIG


class PrepareError(DfgetError):
    exit_code = ExitCode.PREPARE


class RegisterError(DfgetError):
    """Registration refused for good (code 608: authentication needed): no back-to-source."""

    exit_code = ExitCode.REGISTER


class DownloadError(DfgetError):
    exit_code = ExitCode.DOWNLOAD


class SupernodeError(Exception):
    """A supernode call failed: transport error, timeout, HTTP status other than 200, bad body."""

    def __init__(self, message: str, *, http_status: int | None = None) -> None:
        super().__init__(message)
        self.http_status = http_status


class PieceError(Exception):
    """One piece could not be fetched or did not verify."""

    def __init__(
        self, kind: PieceErrorKind, message: str, *, real_md5: str = "", expected_md5: str = ""
    ) -> None:
        super().__init__(message)
        self.kind = kind
        self.real_md5 = real_md5
        self.expected_md5 = expected_md5


class OriginError(Exception):
    """The origin could not serve the file (back-to-source)."""


class UploaderError(Exception):
    """The local uploader could not be started or reached."""


class WriteError(Exception):
    """Writing the downloaded bytes to disk failed."""


class VerifyError(Exception):
    """The finished file is incomplete or its md5 is not the expected one."""
