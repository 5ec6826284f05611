package errs

import (
	"context"
	"errors"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// codeOf is the one table from kinds to gRPC codes.
var codeOf = map[Kind]codes.Code{
	KindInternal:           codes.Internal,
	KindInvalid:            codes.InvalidArgument,
	KindNotFound:           codes.NotFound,
	KindAlreadyExists:      codes.AlreadyExists,
	KindPermissionDenied:   codes.PermissionDenied,
	KindUnauthenticated:    codes.Unauthenticated,
	KindFailedPrecondition: codes.FailedPrecondition,
	KindUnavailable:        codes.Unavailable,
	KindResourceExhausted:  codes.ResourceExhausted,
}

// Code returns the gRPC code for err.
func Code(err error) codes.Code {
	if err == nil {
		return codes.OK
	}
	if _, ok := status.FromError(err); ok {
		return status.Code(err)
	}
	switch {
	case errors.Is(err, context.Canceled):
		return codes.Canceled
	case errors.Is(err, context.DeadlineExceeded):
		return codes.DeadlineExceeded
	}
	return codeOf[KindOf(err)]
}

// ToStatus converts err for the wire. Errors with a kind keep their safe
// message (and a google.rpc.BadRequest detail naming the field); gRPC status
// errors from downstream calls pass through; anything else becomes a generic
// Internal error — the caller logs the original.
func ToStatus(err error) *status.Status {
	if err == nil {
		return nil
	}
	var e *Error
	if errors.As(err, &e) {
		msg := e.Message
		if e.Field != "" {
			msg = e.Field + ": " + e.Message
		}
		st := status.New(codeOf[e.Kind], msg)
		if e.Field != "" {
			if d, derr := st.WithDetails(&errdetails.BadRequest{
				FieldViolations: []*errdetails.BadRequest_FieldViolation{{Field: e.Field, Description: e.Message}},
			}); derr == nil {
				st = d
			}
		}
		return st
	}
	if st, ok := status.FromError(err); ok {
		return st
	}
	switch c := Code(err); c {
	case codes.Canceled, codes.DeadlineExceeded:
		return status.New(c, c.String())
	}
	return status.New(codes.Internal, "internal error")
}

// FromStatus turns a gRPC error from another service back into a kinded
// error, so that a downstream NotFound stays NotFound.
func FromStatus(err error) error {
	st, ok := status.FromError(err)
	if !ok || err == nil {
		return err
	}
	for k, c := range codeOf {
		if c == st.Code() && k != KindInternal {
			return &Error{Kind: k, Message: st.Message()}
		}
	}
	if st.Code() == codes.Unavailable || st.Code() == codes.DeadlineExceeded {
		return &Error{Kind: KindUnavailable, Message: st.Message()}
	}
	return err
}
