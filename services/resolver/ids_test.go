package resolver_test

import (
	"regexp"
	"strings"
	"testing"

	"github.com/ozsecrets/oz/services/resolver"
)

var idPattern = regexp.MustCompile(`^[a-z][a-z0-9-]*$`)

func TestValidID(t *testing.T) {
	tests := []struct {
		id   string
		want bool
	}{
		{"a", true},
		{"red-team-2", true},
		{"a-", true},
		{strings.Repeat("a", 63), true},
		{strings.Repeat("a", 64), false},
		{"", false},
		{"Red", false},
		{"1red", false},
		{"-red", false},
		{"red_team", false},
		{"red/x", false},
		{"red.x", false},
		{"rëd", false},
	}
	for _, tt := range tests {
		if got := resolver.ValidID(tt.id); got != tt.want {
			t.Errorf("ValidID(%q): got %v, want %v", tt.id, got, tt.want)
		}
	}
}

func FuzzValidID(f *testing.F) {
	for _, s := range []string{"a", "red-1", "Red", "", "a/b", strings.Repeat("z", 64)} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		want := idPattern.MatchString(s) && len(s) <= resolver.MaxIDLength
		if got := resolver.ValidID(s); got != want {
			t.Errorf("ValidID(%q): got %v, want %v", s, got, want)
		}
	})
}
