package cmdutil_test

import (
	"strings"
	"testing"

	"github.com/ozsecrets/oz/cli/internal/cmd/cmdutil"
)

func TestValueLike(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want string // in the reason; "" for a name
	}{
		{"EnvName", "DEPLOY_TOKEN", ""},
		{"Digits", "AWS_S3_KEY_2", ""},
		{"LongWords", "STRIPE_LIVE_PUBLISHABLE_KEY_FOR_THE_BILLING_SERVICE", ""},
		{"Lowercase", "hunter2", "UPPER_SNAKE_CASE"},
		{"Mixed", "ApiKey", "UPPER_SNAKE_CASE"},
		{"Punctuation", "p@ss-w0rd", "characters names never have"},
		{"LeadingDigit", "1PASSWORD", ""}, // invalid (the server says so), not a value
		{"Long", strings.Repeat("A", 65), "longer than names are"},
		{"Generated", "AKIAIOSFODNN7EXAMPLE", "generated key"},
		{"GeneratedAfterPrefix", "KEY_0123456789ABCDEF", "generated key"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := cmdutil.ValueLike(tt.in)
			if (got == "") != (tt.want == "") || !strings.Contains(got, tt.want) {
				t.Errorf("ValueLike(%q) = %q, want %q", tt.in, got, tt.want)
			}
			if got != "" && strings.Contains(got, tt.in) {
				t.Errorf("ValueLike(%q) = %q: repeats the name", tt.in, got)
			}
		})
	}
}
