package errs_test

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"

	"github.com/ozsecrets/oz/services/internal/errs"
)

func TestToStatus(t *testing.T) {
	tests := []struct {
		name    string
		err     error
		code    codes.Code
		message string
		field   string
	}{
		{"Invalid", errs.Field("secret_id", "must match %s", "[A-Z]"), codes.InvalidArgument, "secret_id: must match [A-Z]", "secret_id"},
		{"Wrapped", fmt.Errorf("create: %w", errs.E(errs.KindNotFound, "secret %q not found", "X")), codes.NotFound, `secret "X" not found`, ""},
		{"AlreadyExists", errs.E(errs.KindAlreadyExists, "exists"), codes.AlreadyExists, "exists", ""},
		{"PermissionDenied", errs.E(errs.KindPermissionDenied, "no"), codes.PermissionDenied, "no", ""},
		{"Unauthenticated", errs.E(errs.KindUnauthenticated, "bad token"), codes.Unauthenticated, "bad token", ""},
		{"FailedPrecondition", errs.E(errs.KindFailedPrecondition, "etag"), codes.FailedPrecondition, "etag", ""},
		{"Unavailable", errs.E(errs.KindUnavailable, "down"), codes.Unavailable, "down", ""},
		{"ResourceExhaustedHidesCause", &errs.Error{Kind: errs.KindResourceExhausted, Message: "the secret store's disk is full",
			Err: errors.New("/data/secretstore.db: write: no space left on device canary-value")},
			codes.ResourceExhausted, "the secret store's disk is full", ""},
		{"UnknownIsInternal", errors.New("disk on fire: canary-value"), codes.Internal, "internal error", ""},
		{"Canceled", context.Canceled, codes.Canceled, "Canceled", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			st := errs.ToStatus(tt.err)
			if st.Code() != tt.code {
				t.Errorf("code: got %v, want %v", st.Code(), tt.code)
			}
			if st.Message() != tt.message {
				t.Errorf("message: got %q, want %q", st.Message(), tt.message)
			}
			var field string
			for _, d := range st.Details() {
				if br, ok := d.(*errdetails.BadRequest); ok && len(br.FieldViolations) > 0 {
					field = br.FieldViolations[0].Field
				}
			}
			if field != tt.field {
				t.Errorf("field: got %q, want %q", field, tt.field)
			}
		})
	}
}

func TestIsKind(t *testing.T) {
	err := fmt.Errorf("wrap: %w", errs.E(errs.KindNotFound, "gone"))
	if !errors.Is(err, errs.NotFound) {
		t.Errorf("errors.Is(NotFound): got false, want true")
	}
	if errors.Is(err, errs.AlreadyExists) {
		t.Errorf("errors.Is(AlreadyExists): got true, want false")
	}
}

func TestFromStatusRoundTrip(t *testing.T) {
	back := errs.FromStatus(errs.ToStatus(errs.E(errs.KindPermissionDenied, "no")).Err())
	if errs.KindOf(back) != errs.KindPermissionDenied {
		t.Errorf("kind: got %v, want %v", errs.KindOf(back), errs.KindPermissionDenied)
	}
}
