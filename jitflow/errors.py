"""TensorFlow's error classes. Each `OpError` carries the op it concerns and its definition site."""
from __future__ import annotations

from typing import Any

OK = 0
CANCELLED = 1
UNKNOWN = 2
INVALID_ARGUMENT = 3
DEADLINE_EXCEEDED = 4
NOT_FOUND = 5
ALREADY_EXISTS = 6
PERMISSION_DENIED = 7
RESOURCE_EXHAUSTED = 8
FAILED_PRECONDITION = 9
ABORTED = 10
OUT_OF_RANGE = 11
UNIMPLEMENTED = 12
INTERNAL = 13
UNAVAILABLE = 14
DATA_LOSS = 15
UNAUTHENTICATED = 16


class OpError(Exception):
    """An error raised while running an op; `op` and `node_def` say which."""

    def __init__(self, node_def: Any, op: Any, message: str, error_code: int = UNKNOWN) -> None:
        super().__init__(message)
        self._node_def = node_def
        self._op = op
        self._message = message
        self._error_code = error_code

    @property
    def message(self) -> str:
        return self._message

    @property
    def op(self) -> Any:
        return self._op

    @property
    def node_def(self) -> Any:
        return self._node_def

    @property
    def error_code(self) -> int:
        return self._error_code

    def __str__(self) -> str:
        return self._message

    def __reduce__(self) -> Any:
        return (type(self), (self._node_def, None, self._message))


class _CodedError(OpError):
    """An OpError whose code is fixed by its class (TF's constructor takes no code)."""

    code = UNKNOWN

    def __init__(self, node_def: Any, op: Any, message: str, *args: Any) -> None:
        super().__init__(node_def, op, message, self.code)


class CancelledError(_CodedError):
    """TensorFlow's CancelledError."""

    code = CANCELLED


class UnknownError(_CodedError):
    """TensorFlow's UnknownError."""

    code = UNKNOWN


class InvalidArgumentError(_CodedError):
    """TensorFlow's InvalidArgumentError."""

    code = INVALID_ARGUMENT


class DeadlineExceededError(_CodedError):
    """TensorFlow's DeadlineExceededError."""

    code = DEADLINE_EXCEEDED


class NotFoundError(_CodedError):
    """TensorFlow's NotFoundError."""

    code = NOT_FOUND


class AlreadyExistsError(_CodedError):
    """TensorFlow's AlreadyExistsError."""

    code = ALREADY_EXISTS


class PermissionDeniedError(_CodedError):
    """TensorFlow's PermissionDeniedError."""

    code = PERMISSION_DENIED


class ResourceExhaustedError(_CodedError):
    """TensorFlow's ResourceExhaustedError."""

    code = RESOURCE_EXHAUSTED


class FailedPreconditionError(_CodedError):
    """TensorFlow's FailedPreconditionError."""

    code = FAILED_PRECONDITION


class AbortedError(_CodedError):
    """TensorFlow's AbortedError."""

    code = ABORTED


class OutOfRangeError(_CodedError):
    """TensorFlow's OutOfRangeError."""

    code = OUT_OF_RANGE


class UnimplementedError(_CodedError):
    """TensorFlow's UnimplementedError."""

    code = UNIMPLEMENTED


class InternalError(_CodedError):
    """TensorFlow's InternalError."""

    code = INTERNAL


class UnavailableError(_CodedError):
    """TensorFlow's UnavailableError."""

    code = UNAVAILABLE


class DataLossError(_CodedError):
    """TensorFlow's DataLossError."""

    code = DATA_LOSS


class UnauthenticatedError(_CodedError):
    """TensorFlow's UnauthenticatedError."""

    code = UNAUTHENTICATED


_BY_CODE = {
    code: cls
    for code, cls in [
        (CANCELLED, CancelledError), (UNKNOWN, UnknownError), (INVALID_ARGUMENT, InvalidArgumentError),
        (DEADLINE_EXCEEDED, DeadlineExceededError), (NOT_FOUND, NotFoundError),
        (ALREADY_EXISTS, AlreadyExistsError), (PERMISSION_DENIED, PermissionDeniedError),
        (RESOURCE_EXHAUSTED, ResourceExhaustedError), (FAILED_PRECONDITION, FailedPreconditionError),
        (ABORTED, AbortedError), (OUT_OF_RANGE, OutOfRangeError), (UNIMPLEMENTED, UnimplementedError),
        (INTERNAL, InternalError), (UNAVAILABLE, UnavailableError), (DATA_LOSS, DataLossError),
        (UNAUTHENTICATED, UnauthenticatedError),
    ]
}


def exception_type_from_error_code(code: int) -> type[OpError]:
    """The error class for a TF error code."""
    return _BY_CODE.get(code, UnknownError)
