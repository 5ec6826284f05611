package reqmeta_test

import (
	"strings"
	"testing"

	"github.com/ozsecrets/oz/lib/reqmeta"
)

func TestValidRequestID(t *testing.T) {
	for _, tt := range []struct {
		name string
		id   string
		want bool
	}{
		{"UUID", "0b6f2a8e-1c3d-4e5f-8a9b-0c1d2e3f4a5b", true},
		{"Punctuation", "job-42:step.3_a", true},
		{"MaxLength", strings.Repeat("a", reqmeta.MaxRequestIDLength), true},
		{"Empty", "", false},
		{"TooLong", strings.Repeat("a", reqmeta.MaxRequestIDLength+1), false},
		{"Space", "a b", false},
		{"Newline", "a\nfake log line", false},
		{"Control", "a\x1b[2J", false},
		{"NonASCII", "é", false},
		{"Slash", "a/b", false},
		{"Quote", `a"b`, false},
		{"Token", "oz_0123456789abcdef_CANARYsecret", false},
		{"Ticket", "x-ozt_0123456789abcdef_A", false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if got := reqmeta.ValidRequestID(tt.id); got != tt.want {
				t.Errorf("ValidRequestID(%q): got %v, want %v", tt.id, got, tt.want)
			}
		})
	}
}

func TestRequestIDOr(t *testing.T) {
	if got := reqmeta.RequestIDOr("abc-1"); got != "abc-1" {
		t.Errorf("valid id: got %q, want it kept", got)
	}
	bad := "oz_0123456789abcdef_CANARY"
	got := reqmeta.RequestIDOr(bad)
	if !reqmeta.ValidRequestID(got) || strings.Contains(got, "CANARY") || strings.Contains(got, "0123456789abcdef") {
		t.Errorf("invalid id: got %q, want a fresh valid id with nothing of the old", got)
	}
	if a, b := reqmeta.NewRequestID(), reqmeta.NewRequestID(); a == b {
		t.Errorf("two new ids are equal: %q", a)
	}
}
