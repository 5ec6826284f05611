package exitcode_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"
	"testing"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/ozsecrets/oz/cli/internal/exitcode"
)

func TestFromGRPC(t *testing.T) {
	tests := []struct {
		code codes.Code
		want int
	}{
		{codes.OK, exitcode.OK},
		{codes.Canceled, exitcode.Interrupted},
		{codes.Unknown, exitcode.Error},
		{codes.InvalidArgument, exitcode.Usage},
		{codes.DeadlineExceeded, exitcode.Unavailable},
		{codes.NotFound, exitcode.NotFound},
		{codes.AlreadyExists, exitcode.Conflict},
		{codes.PermissionDenied, exitcode.Denied},
		{codes.ResourceExhausted, exitcode.Exhausted},
		{codes.FailedPrecondition, exitcode.Conflict},
		{codes.Aborted, exitcode.Conflict},
		{codes.OutOfRange, exitcode.Usage},
		{codes.Unimplemented, exitcode.Error},
		{codes.Internal, exitcode.Error},
		{codes.Unavailable, exitcode.Unavailable},
		{codes.DataLoss, exitcode.Error},
		{codes.Unauthenticated, exitcode.Denied},
	}
	for _, tt := range tests {
		t.Run(tt.code.String(), func(t *testing.T) {
			if got := exitcode.FromGRPC(tt.code); got != tt.want {
				t.Errorf("FromGRPC(%v) = %d, want %d", tt.code, got, tt.want)
			}
		})
	}
}

func TestTableDocumentsEveryCode(t *testing.T) {
	want := []int{exitcode.OK, exitcode.Error, exitcode.Usage, exitcode.NotFound, exitcode.Denied, exitcode.Unavailable, exitcode.Conflict, exitcode.Strict, exitcode.Tampered, exitcode.Exhausted, exitcode.Interrupted}
	var got []int
	for _, c := range exitcode.Table {
		got = append(got, c.Code)
		if !strings.Contains(exitcode.Help(), fmt.Sprintf("%-3d  %s", c.Code, c.Meaning)) {
			t.Errorf("Help() does not list code %d", c.Code)
		}
	}
	if !slices.Equal(got, want) {
		t.Errorf("got codes %v, want %v", got, want)
	}
	if got, want := []int{exitcode.OK, exitcode.Error, exitcode.Usage, exitcode.NotFound, exitcode.Denied, exitcode.Unavailable, exitcode.Conflict, exitcode.Strict, exitcode.Tampered, exitcode.Exhausted}, []int{0, 1, 2, 3, 4, 5, 6, 7, 8, 9}; !slices.Equal(got, want) {
		t.Errorf("got values %v, want %v", got, want)
	}
}

func badRequest(t *testing.T, msg string, violations ...string) error {
	t.Helper()
	br := &errdetails.BadRequest{}
	for i := 0; i < len(violations); i += 2 {
		br.FieldViolations = append(br.FieldViolations, &errdetails.BadRequest_FieldViolation{Field: violations[i], Description: violations[i+1]})
	}
	st, err := status.New(codes.InvalidArgument, msg).WithDetails(br)
	if err != nil {
		t.Fatal(err)
	}
	return st.Err()
}

func TestDescribe(t *testing.T) {
	notFound := status.Error(codes.NotFound, "secret teams/acme/secrets/X not found")
	tests := []struct {
		name      string
		err       error
		wantLines []string
		wantCode  int
	}{
		{"Nil", nil, nil, exitcode.OK},
		{"Plain", errors.New("read config: boom"), []string{"read config: boom"}, exitcode.Error},
		{"Usage", exitcode.Usagef("missing %s", "NAME"), []string{"missing NAME"}, exitcode.Usage},
		{"New", exitcode.New(exitcode.Conflict, "x"), []string{"x"}, exitcode.Conflict},
		{"StatusMessage", notFound, []string{"secret teams/acme/secrets/X not found"}, exitcode.NotFound},
		{"WrappedStatus", fmt.Errorf("created user alice, but: %w", notFound), []string{"created user alice, but: secret teams/acme/secrets/X not found"}, exitcode.NotFound},
		{"Denied", status.Error(codes.PermissionDenied, "not an admin of team acme"), []string{"not an admin of team acme"}, exitcode.Denied},
		{"EmptyMessage", status.Error(codes.Unavailable, ""), []string{"unavailable"}, exitcode.Unavailable},
		{
			"FieldViolation",
			badRequest(t, "invalid secret", "secret_id", `must match [A-Za-z_][A-Za-z0-9_]* (got "1ABC")`),
			[]string{`secret_id: must match [A-Za-z_][A-Za-z0-9_]* (got "1ABC")`},
			exitcode.Usage,
		},
		{
			"FieldViolations",
			badRequest(t, "invalid secret", "secret_id", "reserved name", "value", "must not be empty"),
			[]string{"secret_id: reserved name", "value: must not be empty"},
			exitcode.Usage,
		},
		{"Canceled", context.Canceled, []string{"interrupted"}, exitcode.Interrupted},
		{"Deadline", context.DeadlineExceeded, []string{"context deadline exceeded"}, exitcode.Unavailable},
		{"Silent", exitcode.Silent(42), nil, 42},
		{"WrappedSilent", fmt.Errorf("run: %w", exitcode.Silent(3)), nil, 3},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			lines, code := exitcode.Describe(tt.err)
			if !slices.Equal(lines, tt.wantLines) {
				t.Errorf("got lines %q, want %q", lines, tt.wantLines)
			}
			if code != tt.wantCode {
				t.Errorf("got code %d, want %d", code, tt.wantCode)
			}
		})
	}
}

// The README lists the exit codes; it must match Table.
func TestReadmeListsExitCodes(t *testing.T) {
	b, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range exitcode.Table {
		if row := fmt.Sprintf("| %d | %s |", c.Code, c.Meaning); !strings.Contains(string(b), row) {
			t.Errorf("README.md lacks the row %q", row)
		}
	}
}
