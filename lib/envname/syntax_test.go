package envname_test

import (
	"regexp"
	"strings"
	"testing"

	"github.com/ozsecrets/oz/lib/envname"
)

func TestSyntax(t *testing.T) {
	for _, tc := range []struct {
		name string
		ok   bool
		rule string
	}{
		{"API_KEY", true, ""},
		{"_x9", true, ""},
		{"a", true, ""},
		{"PATH", true, ""}, // reserved, but of the right shape
		{strings.Repeat("A", envname.MaxLength), true, ""},
		{"", false, "is required"},
		{strings.Repeat("A", envname.MaxLength+1), false, "must be at most 255 characters"},
		{"9LIVES", false, "must match " + envname.Pattern},
		{"API-KEY", false, "must match " + envname.Pattern},
		{"KEY\x00", false, "must match " + envname.Pattern},
		{"ÄPI", false, "must match " + envname.Pattern},
	} {
		rule, ok := envname.Syntax(tc.name, envname.MaxLength)
		if ok != tc.ok || !strings.HasPrefix(rule, tc.rule) {
			t.Errorf("Syntax(%q): got %q, %v; want %q…, %v", tc.name, rule, ok, tc.rule, tc.ok)
		}
	}
}

// FuzzSyntax: Syntax accepts exactly the names Pattern matches, within the
// length bound.
func FuzzSyntax(f *testing.F) {
	re := regexp.MustCompile("^" + envname.Pattern + "$")
	for _, s := range []string{"A", "9", "A-B", "_", "ñ"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		_, ok := envname.Syntax(s, 16)
		if want := re.MatchString(s) && len(s) <= 16; ok != want {
			t.Errorf("Syntax(%q): got %v, want %v", s, ok, want)
		}
	})
}
