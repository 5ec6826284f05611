package directory

import (
	"encoding/base64"
	"strings"
	"testing"

	"github.com/ozsecrets/oz/services/resolver"
)

func TestNewBearerShape(t *testing.T) {
	seen := map[string]bool{}
	for range 100 {
		id, bearer := newBearer()
		if len(bearer) != resolver.OpaqueLen(TokenPrefix) || !strings.HasPrefix(bearer, "oz_"+id+"_") {
			t.Fatalf("got a token of length %d, want %d starting with oz_<id>_", len(bearer), resolver.OpaqueLen(TokenPrefix))
		}
		secret, err := base64.RawURLEncoding.DecodeString(bearer[len("oz_")+16+1:])
		if err != nil || len(secret)*8 < 256 {
			t.Fatalf("secret: got %d bits (%v), want 256", len(secret)*8, err)
		}
		got, ok := parseBearer(bearer)
		if !ok || got != id {
			t.Fatalf("parseBearer: got %q, %v, want %q, true", got, ok, id)
		}
		if seen[id] {
			t.Fatalf("token id repeated")
		}
		seen[id] = true
	}
}

func TestParseBearerRefuses(t *testing.T) {
	_, good := newBearer()
	tests := map[string]string{
		"Empty":           "",
		"NoPrefix":        good[3:],
		"OtherPrefix":     "xz_" + good[3:],
		"Short":           good[:len(good)-1],
		"Long":            good + "A",
		"UpperCaseID":     "oz_" + strings.ToUpper(good[3:19]) + good[19:],
		"NoSeparator":     good[:19] + "-" + good[20:],
		"BadSecretChar":   good[:len(good)-1] + "+",
		"NonCanonicalB64": good[:len(good)-1] + "B", // 43rd character must leave zero bits
		"Whitespace":      " " + good[1:],
	}
	for name, s := range tests {
		t.Run(name, func(t *testing.T) {
			if _, ok := parseBearer(s); ok {
				t.Errorf("parseBearer accepted a malformed token")
			}
		})
	}
}

// FuzzParseBearer: parseBearer never panics, and what it accepts has the
// documented shape.
func FuzzParseBearer(f *testing.F) {
	_, good := newBearer()
	f.Add(good)
	f.Add("oz_notatoken_0000")
	f.Add("oz_0123456789abcdef_" + strings.Repeat("A", 43))
	f.Fuzz(func(t *testing.T, s string) {
		id, ok := parseBearer(s)
		if !ok {
			return
		}
		if len(s) != resolver.OpaqueLen(TokenPrefix) || !resolver.ValidTokenID(id) || s[:len("oz_")+16+1] != "oz_"+id+"_" {
			t.Errorf("accepted %q with id %q", s, id)
		}
	})
}
