package secretstore_test

import (
	"bytes"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"testing"

	"github.com/ozsecrets/oz/lib/hostbind"
	"github.com/ozsecrets/oz/services/internal/errs"
	"github.com/ozsecrets/oz/services/secretstore"
)

// wantField checks that err is an invalid-argument error about field whose
// message contains want.
func wantField(t *testing.T, err error, field, want string) {
	t.Helper()
	var e *errs.Error
	if !errors.As(err, &e) {
		t.Fatalf("got error %v, want an errs.Error about %s", err, field)
	}
	if e.Kind != errs.KindInvalid || e.Field != field {
		t.Fatalf("got kind %v, field %q (%v), want invalid, field %q", e.Kind, e.Field, err, field)
	}
	if !strings.Contains(e.Message, want) {
		t.Fatalf("message %q does not contain %q", e.Message, want)
	}
}

func TestValidateName(t *testing.T) {
	l := secretstore.DefaultLimits()
	valid := []string{"A", "_", "a", "a1", "API_KEY", "_private", "Path2", "PATHS", "MY_PATH", "OZX", "LDAP_URL", "DYLD", "HOMEBREW_TOKEN", strings.Repeat("A", 255)}
	for _, name := range valid {
		t.Run("Valid/"+name[:min(len(name), 20)], func(t *testing.T) {
			if err := l.ValidateName("secret_id", name); err != nil {
				t.Fatalf("ValidateName(%q): got %v, want nil", name, err)
			}
		})
	}
	for _, tc := range []struct{ name, in, rule string }{
		{"Empty", "", "is required"},
		{"LeadingDigit", "1ABC", "must match [A-Za-z_][A-Za-z0-9_]*"},
		{"Dash", "A-B", "must match"},
		{"Space", "A B", "must match"},
		{"Dot", "A.B", "must match"},
		{"NonASCII", "CLÉ", "must match"},
		{"NUL", "A\x00", "must match"},
		{"TooLong", strings.Repeat("A", 256), "at most 255 characters"},
		{"PATH", "PATH", "PATH is reserved"},
		{"PathLower", "path", "path is reserved"},
		{"HOME", "HOME", "reserved"},
		{"SHELL", "SHELL", "reserved"},
		{"USER", "User", "reserved"},
		{"PWD", "PWD", "reserved"},
		{"IFS", "IFS", "reserved"},
		{"BASH_ENV", "BASH_ENV", "reserved"},
		{"LD_PRELOAD", "LD_PRELOAD", "LD_PRELOAD is reserved"},
		{"LdLower", "ld_library_path", "reserved"},
		{"LD_", "LD_", "reserved"},
		{"DYLD", "DYLD_INSERT_LIBRARIES", "reserved"},
		{"OZ_X", "OZ_X", "OZ_X is reserved"},
		{"OzLower", "oz_x", "oz_x is reserved"},
		{"OzMixed", "Oz_Token", "reserved"},
		{"BashFunc", "BASH_FUNC_x", "reserved"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			wantField(t, l.ValidateName("secret_id", tc.in), "secret_id", tc.rule)
		})
	}
	t.Run("ReservedRuleIsExplained", func(t *testing.T) {
		for name, wants := range map[string][]string{
			"OZ_X":         {"OZ_X is reserved", "every name starting with OZ_", "README"},
			"NODE_OPTIONS": {"NODE_OPTIONS is reserved", "interpreter", "README"},
			"http_proxy":   {"http_proxy is reserved", "runner", "README"},
		} {
			err := l.ValidateName("secret_id", name)
			for _, want := range wants {
				if err == nil || !strings.Contains(err.Error(), want) {
					t.Errorf("error %v does not mention %q", err, want)
				}
			}
		}
	})
}

func FuzzValidateName(f *testing.F) {
	for _, s := range []string{"A", "1ABC", "A-B", "PATH", "oz_x", "ld_", "_", ""} {
		f.Add(s)
	}
	re := regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)
	reserved := regexp.MustCompile(`^(?i:PATH|HOME|SHELL|USER|PWD|IFS|ENV|BASH_ENV|(LD_|DYLD_|BASH_FUNC_|OZ_).*)$`)
	l := secretstore.DefaultLimits()
	f.Fuzz(func(t *testing.T, name string) {
		want := re.MatchString(name) && len(name) <= 255 && !reserved.MatchString(name)
		err := l.ValidateName("secret_id", name)
		if got := err == nil; got != want {
			t.Fatalf("ValidateName(%q): got valid=%v (%v), want %v", name, got, err, want)
		}
	})
}

func TestValidateValue(t *testing.T) {
	l := secretstore.DefaultLimits()
	const canary = "CANARY-value-9f2"
	for _, tc := range []struct {
		name string
		in   []byte
	}{
		{"OneByte", []byte("x")},
		{"MultiLine", []byte("-----BEGIN KEY-----\nabc\n-----END KEY-----\n")},
		{"Binaryish", []byte{0x01, 0xff, 0x7f}},
		{"64KiB", bytes.Repeat([]byte("a"), 65536)},
	} {
		t.Run("Valid/"+tc.name, func(t *testing.T) {
			if err := l.ValidateValue("value", tc.in); err != nil {
				t.Fatalf("ValidateValue: got %v, want nil", err)
			}
		})
	}
	for _, tc := range []struct {
		name string
		in   []byte
		rule string
	}{
		{"Empty", nil, "is required"},
		{"TooLarge", append([]byte(canary), bytes.Repeat([]byte("a"), 65537-len(canary))...), "must be at most 65536 bytes (got 65537)"},
		{"NUL", []byte(canary + "\x00" + canary), "must not contain a NUL byte"},
		{"NULOnly", []byte{0}, "must not contain a NUL byte"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := l.ValidateValue("value", tc.in)
			wantField(t, err, "value", tc.rule)
			if strings.Contains(err.Error(), canary) {
				t.Fatalf("error %q contains the value", err)
			}
		})
	}
}

func TestValidateDescription(t *testing.T) {
	l := secretstore.DefaultLimits()
	for _, in := range []string{"", "the API key", "für → CI", strings.Repeat("é", 1024), strings.Repeat("a", 1024)} {
		if err := l.ValidateDescription("description", in); err != nil {
			t.Errorf("ValidateDescription(%d chars): got %v, want nil", len([]rune(in)), err)
		}
	}
	wantField(t, l.ValidateDescription("description", strings.Repeat("a", 1025)), "description", "at most 1024 characters (got 1025)")
	wantField(t, l.ValidateDescription("description", strings.Repeat("é", 1025)), "description", "at most 1024 characters")
	wantField(t, l.ValidateDescription("description", "bad \xff utf-8"), "description", "valid UTF-8")
	// Descriptions are shown on teammates' terminals: one line of
	// printable text.
	for _, in := range []string{"clear \x1b[2J", "fake\r\nrow", "nul\x00", "multi\nline", "tab\t", "rtl \u202e"} {
		wantField(t, l.ValidateDescription("description", in), "description", "no control characters")
	}
}

func TestLimitsConfigurable(t *testing.T) {
	l := secretstore.Limits{MaxValueBytes: 8, MaxDescriptionChars: 3, MaxNameLen: 4}
	wantField(t, l.ValidateValue("value", []byte("123456789")), "value", "at most 8 bytes")
	if err := l.ValidateValue("value", []byte("12345678")); err != nil {
		t.Errorf("8-byte value: got %v, want nil", err)
	}
	wantField(t, l.ValidateDescription("description", "abcd"), "description", "at most 3 characters")
	wantField(t, l.ValidateName("secret_id", "ABCDE"), "secret_id", "at most 4 characters")
	// Zero fields are the defaults.
	var zero secretstore.Limits
	if err := zero.ValidateValue("value", bytes.Repeat([]byte("a"), 65536)); err != nil {
		t.Errorf("zero Limits, 64 KiB value: got %v, want nil", err)
	}
}

func TestParseOwner(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want secretstore.Owner
	}{
		{"teams/acme", secretstore.Team("acme")},
		{"users/alice", secretstore.User("alice")},
		{"teams/a-1", secretstore.Team("a-1")},
	} {
		got, err := secretstore.ParseOwner(tc.in)
		if err != nil || got != tc.want {
			t.Errorf("ParseOwner(%q): got %v, %v, want %v", tc.in, got, err, tc.want)
		}
		if got.String() != tc.in {
			t.Errorf("String: got %q, want %q", got.String(), tc.in)
		}
	}
	for _, in := range []string{"", "teams", "teams/", "teams/Acme", "teams/1a", "groups/acme", "teams/acme/x", "users/a_b"} {
		if _, err := secretstore.ParseOwner(in); errs.KindOf(err) != errs.KindInvalid {
			t.Errorf("ParseOwner(%q): got %v, want an invalid-argument error", in, err)
		}
	}
}

func TestParseName(t *testing.T) {
	o, id, err := secretstore.ParseName("name", "teams/acme/secrets/API_KEY")
	if err != nil || o != secretstore.Team("acme") || id != "API_KEY" {
		t.Fatalf("ParseName: got %v, %q, %v", o, id, err)
	}
	// Reserved names parse: a secret created before its name became
	// reserved can still be read and deleted.
	if _, _, err := secretstore.ParseName("name", "users/bob/secrets/OZ_OLD"); err != nil {
		t.Fatalf("ParseName of a reserved name: %v", err)
	}
	for _, tc := range []struct{ in, rule string }{
		{"", "must be teams/{team}/secrets/{secret}"},
		{"teams/acme/API_KEY", "must be teams/{team}/secrets/{secret}"},
		{"teams/acme/keys/API_KEY", "must be"},
		{"teams/acme/secrets/", "the secret id is required"},
		{"teams/acme/secrets/1ABC", "the secret id must match"},
		{"teams/acme/secrets/A-B", "the secret id must match"},
		{"teams/ACME/secrets/A", "the team id must match"},
		{"orgs/acme/secrets/A", "must be teams/{team} or users/{user}"},
		{"teams/acme/secrets/A/versions/1", "must be"},
	} {
		t.Run(tc.in, func(t *testing.T) {
			_, _, err := secretstore.ParseName("name", tc.in)
			wantField(t, err, "name", tc.rule)
		})
	}
}

func TestValidateBinding(t *testing.T) {
	hosts := func(n int) []string {
		out := make([]string, n)
		for i := range out {
			out[i] = fmt.Sprintf("h%d.example.com", i)
		}
		return out
	}
	for _, tc := range []struct {
		name string
		in   *hostbind.Binding
		want *hostbind.Binding
	}{
		{"Absent", nil, nil},
		{"Empty", &hostbind.Binding{}, nil},
		{"Exact", &hostbind.Binding{Hosts: []string{"api.openai.com"}}, &hostbind.Binding{Hosts: []string{"api.openai.com"}}},
		{"LowerCasedDeduplicatedInOrder",
			&hostbind.Binding{Hosts: []string{"*.Metabase.example.com", "API.openai.com", "api.openai.com"}, AllowQuery: true},
			&hostbind.Binding{Hosts: []string{"*.metabase.example.com", "api.openai.com"}, AllowQuery: true}},
		{"MaxHosts", &hostbind.Binding{Hosts: hosts(hostbind.MaxHosts), AllowBody: true}, &hostbind.Binding{Hosts: hosts(hostbind.MaxHosts), AllowBody: true}},
		{"DuplicatesBeyondMaxHosts", &hostbind.Binding{Hosts: append(hosts(hostbind.MaxHosts), hosts(5)...)}, &hostbind.Binding{Hosts: hosts(hostbind.MaxHosts)}},
	} {
		t.Run("Valid/"+tc.name, func(t *testing.T) {
			got, err := secretstore.ValidateBinding("binding", tc.in)
			if err != nil || !got.Equal(tc.want) {
				t.Fatalf("ValidateBinding: got %v, %v; want %v", got, err, tc.want)
			}
		})
	}
	for _, tc := range []struct {
		name string
		in   *hostbind.Binding
		rule string
	}{
		{"QueryWithoutHosts", &hostbind.Binding{AllowQuery: true}, "is required with allow_query or allow_body"},
		{"BodyWithoutHosts", &hostbind.Binding{AllowBody: true}, "is required"},
		{"EmptyPattern", &hostbind.Binding{Hosts: []string{"api.example.com", ""}}, "must not be empty"},
		{"OneLabel", &hostbind.Binding{Hosts: []string{"localhost"}}, "at least two labels"},
		{"WildcardTLD", &hostbind.Binding{Hosts: []string{"*.com"}}, "at least two labels"},
		{"WildcardInside", &hostbind.Binding{Hosts: []string{"api.*.example.com"}}, "'*' is allowed only as the whole first label"},
		{"Port", &hostbind.Binding{Hosts: []string{"api.example.com:443"}}, "port"},
		{"IPv4", &hostbind.Binding{Hosts: []string{"10.0.0.1"}}, "not an IP address"},
		{"IPv6", &hostbind.Binding{Hosts: []string{"[::1]"}}, "IPv6"},
		{"TrailingDot", &hostbind.Binding{Hosts: []string{"api.example.com."}}, "must not end with a dot"},
		{"TooMany", &hostbind.Binding{Hosts: hosts(hostbind.MaxHosts + 1)}, "at most 20 host patterns"},
		{"FarTooMany", &hostbind.Binding{Hosts: hosts(10000)}, "at most 20 host patterns (got 10000)"},
		{"LongPatternNotQuoted", &hostbind.Binding{Hosts: []string{strings.Repeat("a", 300) + ".example.com"}}, "entry 0: a host pattern is at most 255 characters"},
	} {
		t.Run("Invalid/"+tc.name, func(t *testing.T) {
			got, err := secretstore.ValidateBinding("binding", tc.in)
			if got != nil {
				t.Errorf("got binding %v with the error", got)
			}
			wantField(t, err, "binding.hosts", tc.rule)
		})
	}
}
