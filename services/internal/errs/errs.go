// Package errs gives errors a kind and a safe message. Kinds are mapped to
// gRPC status codes in one place (ToStatus); anything without a kind is an
// internal error whose text is logged but never sent to the caller.
//
// Messages must never contain a secret value: they are returned to callers,
// and the gateway copies Unauthenticated messages into a response header.
package errs

import (
	"errors"
	"fmt"
)

// Kind classifies an error for callers.
type Kind int

const (
	KindInternal Kind = iota
	KindInvalid
	KindNotFound
	KindAlreadyExists
	KindPermissionDenied
	KindUnauthenticated
	KindFailedPrecondition
	KindUnavailable
	KindResourceExhausted
)

func (k Kind) String() string {
	switch k {
	case KindInvalid:
		return "invalid"
	case KindNotFound:
		return "not found"
	case KindAlreadyExists:
		return "already exists"
	case KindPermissionDenied:
		return "permission denied"
	case KindUnauthenticated:
		return "unauthenticated"
	case KindFailedPrecondition:
		return "failed precondition"
	case KindUnavailable:
		return "unavailable"
	case KindResourceExhausted:
		return "resource exhausted"
	default:
		return "internal"
	}
}

// Error is an error with a kind, a message safe to show to the caller and,
// for invalid input, the field it is about.
type Error struct {
	Kind    Kind
	Field   string // request field the error is about ("secret_id"), if any
	Message string // safe for callers; never contains a secret value
	Err     error  // optional cause, for logs only
}

func (e *Error) Error() string {
	msg := e.Message
	if e.Field != "" {
		msg = e.Field + ": " + msg
	}
	if e.Err != nil {
		return msg + ": " + e.Err.Error()
	}
	return msg
}

func (e *Error) Unwrap() error { return e.Err }

// Is lets errors.Is(err, errs.NotFound) match any error of that kind.
func (e *Error) Is(target error) bool {
	t, ok := target.(*Error)
	return ok && t.Message == "" && t.Field == "" && t.Kind == e.Kind
}

// Sentinels for errors.Is matching by kind.
var (
	NotFound           = &Error{Kind: KindNotFound}
	AlreadyExists      = &Error{Kind: KindAlreadyExists}
	Invalid            = &Error{Kind: KindInvalid}
	PermissionDenied   = &Error{Kind: KindPermissionDenied}
	Unauthenticated    = &Error{Kind: KindUnauthenticated}
	FailedPrecondition = &Error{Kind: KindFailedPrecondition}
	Unavailable        = &Error{Kind: KindUnavailable}
	ResourceExhausted  = &Error{Kind: KindResourceExhausted}
)

// E builds an error of kind k with a formatted, caller-safe message.
func E(k Kind, format string, args ...any) *Error {
	return &Error{Kind: k, Message: fmt.Sprintf(format, args...)}
}

// Field builds an invalid-argument error about one request field. The rule
// should say what is allowed: "must match [A-Za-z_][A-Za-z0-9_]*".
func Field(field, format string, args ...any) *Error {
	return &Error{Kind: KindInvalid, Field: field, Message: fmt.Sprintf(format, args...)}
}

// KindOf returns the kind of err, KindInternal when it has none.
func KindOf(err error) Kind {
	var e *Error
	if errors.As(err, &e) {
		return e.Kind
	}
	return KindInternal
}
