package hostbind_test

import (
	"slices"
	"strings"
	"testing"

	"github.com/ozsecrets/oz/lib/hostbind"
	secretsv1 "github.com/ozsecrets/oz/proto/gen/oz/secrets/v1"
)

func TestValidatePattern(t *testing.T) {
	for _, p := range []string{"api.openai.com", "*.metabase.example.com", "*.example.com", "a_b.example.com", "API.Example.COM", "x-1.example.io"} {
		if err := hostbind.ValidatePattern(p); err != nil {
			t.Errorf("ValidatePattern(%q) = %v, want nil", p, err)
		}
	}
	for p, want := range map[string]string{
		"":                   "must not be empty",
		"localhost":          "at least two labels",
		"*.com":              "at least two labels",
		"api.openai.com:443": "port",
		"[::1]":              "port or an IPv6 literal",
		"10.0.0.1":           "not an IP address",
		"api.openai.com.":    "end with a dot",
		"a.*.example.com":    "whole first label",
		"*example.com":       "whole first label",
		"api.example.123":    "not all digits",
		"ex ample.com":       "labels must be",
		"bücher.example":     "labels must be",
	} {
		err := hostbind.ValidatePattern(p)
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("ValidatePattern(%q) = %v, want an error saying %q", p, err, want)
		}
	}
}

func TestMatch(t *testing.T) {
	for _, c := range []struct {
		pattern, host string
		want          bool
	}{
		{"api.openai.com", "api.openai.com", true},
		{"api.openai.com", "API.OpenAI.com", true},
		{"api.openai.com", "api.openai.com.evil.com", false},
		{"api.openai.com", "evilapi.openai.com", false},
		{"api.openai.com", "api.openai.com.", false},
		{"*.example.com", "a.example.com", true},
		{"*.example.com", "a.b.example.com", true},
		{"*.example.com", "example.com", false},
		{"*.example.com", "aexample.com", false},
		{"*.example.com", "127.0.0.1", false},
		{"example.com", "93.184.216.34", false},
		{"bad pattern.com", "bad pattern.com", false},
	} {
		if got := hostbind.Match(c.pattern, c.host); got != c.want {
			t.Errorf("Match(%q, %q) = %t, want %t", c.pattern, c.host, got, c.want)
		}
	}
}

func TestNormalize(t *testing.T) {
	got, err := hostbind.Normalize([]string{"API.openai.com", "*.Example.com", "api.openai.com"})
	if err != nil || !slices.Equal(got, []string{"api.openai.com", "*.example.com"}) {
		t.Fatalf("Normalize = %q, %v; want lower-cased, in order, without duplicates", got, err)
	}
	if _, err := hostbind.Normalize(nil); err == nil || !strings.Contains(err.Error(), "at least one") {
		t.Errorf("Normalize(nil) = %v, want 'at least one'", err)
	}
	many := make([]string, hostbind.MaxHosts+1)
	for i := range many {
		many[i] = strings.Repeat("a", i+1) + ".example.com"
	}
	if _, err := hostbind.Normalize(many); err == nil || !strings.Contains(err.Error(), "at most 20") {
		t.Errorf("Normalize(21 hosts) = %v, want 'at most 20'", err)
	}
	if _, err := hostbind.Normalize([]string{"ok.example.com", "10.0.0.1"}); err == nil {
		t.Error("Normalize with an IP address: no error")
	}
}

func TestValidateValue(t *testing.T) {
	if err := hostbind.ValidateValue([]byte("sk-live-0123456789")); err != nil {
		t.Errorf("ValidateValue(a key) = %v", err)
	}
	for value, want := range map[string]string{
		"short":              "at least 8 bytes",
		"line one\nline two": "CR, LF or NUL",
		"abc\x00defghij":     "CR, LF or NUL",
		"xxoz-ph-abcdefgh":   `"oz-ph-"`,
	} {
		err := hostbind.ValidateValue([]byte(value))
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("ValidateValue(%q) = %v, want %q", value, err, want)
		}
		if err != nil && strings.Contains(err.Error(), value) {
			t.Errorf("ValidateValue's error holds the value: %v", err)
		}
	}
}

func TestBindingProto(t *testing.T) {
	b := &hostbind.Binding{Hosts: []string{"api.openai.com"}, AllowBody: true}
	if got := hostbind.FromProto(b.Proto()); !got.Equal(b) {
		t.Errorf("FromProto(Proto(%+v)) = %+v", b, got)
	}
	var none *hostbind.Binding
	if none.Proto() != nil || hostbind.FromProto(nil) != nil || hostbind.FromProto(&secretsv1.HostBinding{AllowQuery: true}) != nil {
		t.Error("a nil binding, or one without hosts, is not 'not bound'")
	}
	if b.Equal(nil) || !none.Equal(nil) || b.Equal(&hostbind.Binding{Hosts: []string{"api.openai.com"}}) {
		t.Error("Equal disagrees")
	}
}

func TestIsRequestHost(t *testing.T) {
	for h, want := range map[string]bool{
		"api.example.com": true, "localhost": true, "10.0.0.7": true, "::1": true, "a_b-c.example": true,
		"": false, "API.example.com": false, "api.example.com:443": false, "fe80::1%eth0": false,
		"::FFFF:10.0.0.1": false, "bad host": false, strings.Repeat("a", 254): false, "x\n.com": false,
	} {
		if got := hostbind.IsRequestHost(h); got != want {
			t.Errorf("IsRequestHost(%q) = %t, want %t", h, got, want)
		}
	}
}
