package edge

import (
	"strings"
	"testing"
)

func TestSafeInputMessage(t *testing.T) {
	const canary = "CANARY"
	tests := []struct{ in, want string }{
		{"proto:\u00a0(line 1:30): invalid value for bytes field value: \"CANARY\"", "value: must be base64"},
		{"proto: (line 1:12): invalid value for string field secretId: 12CANARY", "secretId: must be a string"},
		{"proto: (line 1:2): unknown field \"descripton\"", "descripton: unknown field"},
		{"proto: (line 1:2): unknown field \"CANARY value\"", genericInputMessage},
		{"parsing field \"page_size\": strconv.ParseInt: parsing \"CANARY\": invalid syntax", "page_size: invalid value"},
		{"type mismatch, parameter: name, error: CANARY", "name: invalid value"},
		{"http: request body too large", "request body: too large"},
		{"request body: not received within 30s", "request body: not received within 30s"},
		{"invalid character 'C' looking for beginning of value", genericInputMessage},
		{"CANARY", genericInputMessage},
	}
	for _, tt := range tests {
		got := safeInputMessage(tt.in)
		if got != tt.want {
			t.Errorf("safeInputMessage(%q): got %q, want %q", tt.in, got, tt.want)
		}
		if strings.Contains(got, canary) {
			t.Errorf("safeInputMessage(%q) = %q: echoes the input", tt.in, got)
		}
	}
}
