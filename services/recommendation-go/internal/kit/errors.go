// Package kit is v2's share of what services/kit gives the Python services: domain
// errors mapped to gRPC status codes, the request scope and its propagation, JSON logs,
// serve() with health, reflection and graceful shutdown, and Consul self-registration.
// It keeps v1's names, metadata keys, log fields and messages so that the two
// implementations look the same to callers, operators and log queries.
package kit

import (
	"fmt"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// Violation names one bad request field.
type Violation struct{ Field, Description string }

// Error is a domain error a client is meant to see; Code is its gRPC status.
type Error struct {
	Code       codes.Code
	Message    string
	Violations []Violation // INVALID_ARGUMENT only: sent as google.rpc.BadRequest
}

func (e *Error) Error() string { return e.Message }

// GRPCStatus makes grpc-go send the error as its status (with BadRequest details for
// field violations), like the Python kit's interceptor does.
func (e *Error) GRPCStatus() *status.Status {
	st := status.New(e.Code, e.Message)
	if len(e.Violations) == 0 {
		return st
	}
	bad := &errdetails.BadRequest{}
	for _, v := range e.Violations {
		bad.FieldViolations = append(bad.FieldViolations, &errdetails.BadRequest_FieldViolation{
			Field: v.Field, Description: v.Description,
		})
	}
	if withDetails, err := st.WithDetails(bad); err == nil {
		return withDetails
	}
	return st
}

// InvalidArgument: the request is malformed; the message and the details name the field.
func InvalidArgument(field, description string) *Error {
	return &Error{
		Code:       codes.InvalidArgument,
		Message:    fmt.Sprintf("%s: %s", field, description),
		Violations: []Violation{{Field: field, Description: description}},
	}
}

// NotFound: the request names something that does not exist.
func NotFound(message string) *Error { return &Error{Code: codes.NotFound, Message: message} }

// PermissionDenied: the caller may not do this.
func PermissionDenied(message string) *Error {
	return &Error{Code: codes.PermissionDenied, Message: message}
}

// Unavailable: a dependency is down; callers (or the sidecar) may retry.
func Unavailable(message string) *Error { return &Error{Code: codes.Unavailable, Message: message} }

// CodeName is a status code as the Python side spells it (grpc.StatusCode.X.name), so
// logs and messages read the same in v1 and v2.
func CodeName(c codes.Code) string {
	if name, ok := codeNames[c]; ok {
		return name
	}
	return "UNKNOWN"
}

var codeNames = map[codes.Code]string{
	codes.OK:                 "OK",
	codes.Canceled:           "CANCELLED",
	codes.Unknown:            "UNKNOWN",
	codes.InvalidArgument:    "INVALID_ARGUMENT",
	codes.DeadlineExceeded:   "DEADLINE_EXCEEDED",
	codes.NotFound:           "NOT_FOUND",
	codes.AlreadyExists:      "ALREADY_EXISTS",
	codes.PermissionDenied:   "PERMISSION_DENIED",
	codes.ResourceExhausted:  "RESOURCE_EXHAUSTED",
	codes.FailedPrecondition: "FAILED_PRECONDITION",
	codes.Aborted:            "ABORTED",
	codes.OutOfRange:         "OUT_OF_RANGE",
	codes.Unimplemented:      "UNIMPLEMENTED",
	codes.Internal:           "INTERNAL",
	codes.Unavailable:        "UNAVAILABLE",
	codes.DataLoss:           "DATA_LOSS",
	codes.Unauthenticated:    "UNAUTHENTICATED",
}
