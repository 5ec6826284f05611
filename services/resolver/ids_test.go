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

func TestParsePrincipal(t *testing.T) {
	tests := []struct {
		name string
		want resolver.PrincipalRef
		ok   bool
	}{
		{"users/max", resolver.UserPrincipal("max"), true},
		{"teams/red/agents/deployer", resolver.AgentPrincipal("red", "deployer"), true},
		{"runners/ci-1", resolver.RunnerPrincipal("ci-1"), true},
		{"users/", resolver.PrincipalRef{}, false},
		{"users/Max", resolver.PrincipalRef{}, false},
		{"teams/red", resolver.PrincipalRef{}, false},
		{"teams/red/agents/", resolver.PrincipalRef{}, false},
		{"teams/red/agents/a/b", resolver.PrincipalRef{}, false},
		{"teams/red/members/max", resolver.PrincipalRef{}, false},
		{"runners/", resolver.PrincipalRef{}, false},
		{"runners/r1/x", resolver.PrincipalRef{}, false},
		{"", resolver.PrincipalRef{}, false},
	}
	for _, tt := range tests {
		got, ok := resolver.ParsePrincipal(tt.name)
		if got != tt.want || ok != tt.ok {
			t.Errorf("ParsePrincipal(%q): got %+v, %v, want %+v, %v", tt.name, got, ok, tt.want, tt.ok)
		}
	}
}
