package cmdutil_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/ozsecrets/oz/cli/internal/cmd/cmdutil"
	"github.com/ozsecrets/oz/cli/internal/exitcode"
	"github.com/ozsecrets/oz/cli/internal/iostreams"
)

func TestTrimNewline(t *testing.T) {
	tests := []struct{ in, want string }{
		{"", ""},
		{"a", "a"},
		{"a\n", "a"},
		{"a\r\n", "a"},
		{"a\n\n", "a\n"},
		{"a\r\n\r\n", "a\r\n"},
		{"a\r", "a\r"},
		{"\n", ""},
		{"a\nb\n", "a\nb"},
	}
	for _, tt := range tests {
		if got := string(cmdutil.TrimNewline([]byte(tt.in))); got != tt.want {
			t.Errorf("TrimNewline(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestReadValueTooLarge(t *testing.T) {
	ios, in, _, _ := iostreams.Test()
	in.Write(make([]byte, cmdutil.MaxValueRead+1))
	_, err := cmdutil.ReadValue(context.Background(), ios, nil, "", "X")
	if _, code := exitcode.Describe(err); code != exitcode.Usage {
		t.Errorf("got exit code %d (%v), want %d", code, err, exitcode.Usage)
	}
}

func TestScopeFromFlags(t *testing.T) {
	tests := []struct {
		team, personal bool
		want           cmdutil.Scope
		wantErr        string
	}{
		{true, false, cmdutil.ScopeTeam, ""},
		{false, true, cmdutil.ScopePersonal, ""},
		{true, true, 0, "not both"},
		{false, false, 0, "choose --team"},
	}
	for _, tt := range tests {
		got, err := cmdutil.ScopeFromFlags(tt.team, tt.personal)
		if got != tt.want {
			t.Errorf("ScopeFromFlags(%v, %v) = %v, want %v", tt.team, tt.personal, got, tt.want)
		}
		if tt.wantErr == "" && err != nil || tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)) {
			t.Errorf("ScopeFromFlags(%v, %v): got error %v, want %q", tt.team, tt.personal, err, tt.wantErr)
		}
		if _, code := exitcode.Describe(err); err != nil && code != exitcode.Usage {
			t.Errorf("got exit code %d, want %d", code, exitcode.Usage)
		}
	}
}

const canary = "CANARY-9f8e7d6c"

func TestRedactValue(t *testing.T) {
	br := &errdetails.BadRequest{FieldViolations: []*errdetails.BadRequest_FieldViolation{
		{Field: "value", Description: "contains a NUL byte near " + canary},
	}}
	withDetails, err := status.New(codes.InvalidArgument, "bad value "+canary).WithDetails(br)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name     string
		err      error
		wantCode int
	}{
		{"Status", status.Error(codes.Internal, "cannot store "+canary), exitcode.Error},
		{"StatusWithViolations", withDetails.Err(), exitcode.Usage},
		{"Wrapped", fmt.Errorf("create %s: %w", canary, status.Error(codes.AlreadyExists, canary+" exists")), exitcode.Conflict},
		{"Plain", errors.New("boom " + canary), exitcode.Error},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := cmdutil.RedactValue(tt.err, []byte(canary))
			lines, code := exitcode.Describe(got)
			if strings.Contains(strings.Join(lines, "\n"), canary) || strings.Contains(got.Error(), canary) {
				t.Errorf("got %q, want the value redacted", lines)
			}
			if !strings.Contains(strings.Join(lines, "\n"), cmdutil.Redacted) {
				t.Errorf("got %q, want %q in it", lines, cmdutil.Redacted)
			}
			if code != tt.wantCode {
				t.Errorf("got code %d, want %d", code, tt.wantCode)
			}
		})
	}
	untouched := status.Error(codes.NotFound, "not found")
	if got := cmdutil.RedactValue(untouched, []byte(canary)); got != untouched {
		t.Errorf("got %v, want the error unchanged", got)
	}
}
