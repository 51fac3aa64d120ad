package credbroker

import (
	"errors"
	"fmt"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// Error is a non-OK status from the broker, with its code and message unchanged. The broker's
// messages never carry a secret, and an Error never includes the request. status.Code(err)
// and status.FromError(err) work on it.
type Error struct {
	Code    codes.Code
	Message string
}

func (e *Error) Error() string { return fmt.Sprintf("credbroker: %s: %s", e.Code, e.Message) }

// GRPCStatus lets the grpc/status package see the code.
func (e *Error) GRPCStatus() *status.Status { return status.New(e.Code, e.Message) }

// Is matches the sentinels below: errors.Is(err, credbroker.ErrNotFound).
func (e *Error) Is(target error) bool {
	var sentinel *Error
	return errors.As(target, &sentinel) && sentinel.Message == "" && sentinel.Code == e.Code
}

var (
	// ErrNotFound: unknown provider instance, or no credential for the subject.
	ErrNotFound = &Error{Code: codes.NotFound}
	// ErrInvalidArgument: the request was refused; the message names the field.
	ErrInvalidArgument = &Error{Code: codes.InvalidArgument}
	// ErrReauthRequired: FAILED_PRECONDITION, the credential needs re-authorization.
	ErrReauthRequired = &Error{Code: codes.FailedPrecondition}
	// ErrUnavailable: still UNAVAILABLE after the retries; retry later.
	ErrUnavailable = &Error{Code: codes.Unavailable}
)

// fromRPC turns a gRPC error into an *Error (other errors pass through).
func fromRPC(err error) error {
	if err == nil {
		return nil
	}
	if s, ok := status.FromError(err); ok {
		return &Error{Code: s.Code(), Message: s.Message()}
	}
	return err
}
