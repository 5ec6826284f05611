package envname_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ozsecrets/oz/lib/envname"
)

func TestCheck(t *testing.T) {
	for _, tc := range []struct {
		name     string
		reserved bool
	}{
		{"PATH", true},
		{"path", true}, // zsh ties $path to $PATH
		{"LD_PRELOAD", true},
		{"ld_library_path", true},
		{"DYLD_INSERT_LIBRARIES", true},
		{"BASH_FUNC_ls%%", true},
		{"NODE_OPTIONS", true},
		{"PYTHONPATH", true},
		{"PYTHONSTARTUP", true},
		{"PERL5OPT", true},
		{"RUBYOPT", true},
		{"JAVA_TOOL_OPTIONS", true},
		{"_JAVA_OPTIONS", true},
		{"GIT_SSH_COMMAND", true},
		{"GIT_CONFIG_KEY_0", true},
		{"GCONV_PATH", true},
		{"PROMPT_COMMAND", true},
		{"PS4", true},
		{"http_proxy", true}, // curl reads the lower-case one
		{"HTTPS_PROXY", true},
		{"SSL_CERT_FILE", true},
		{"NODE_EXTRA_CA_CERTS", true},
		{"REQUESTS_CA_BUNDLE", true},
		{"CURL_CA_BUNDLE", true},
		{"OZ_TOKEN", true},
		{"oz_anything", true},
		{"LUA_INIT_5_4", true},
		// Not reserved: near misses.
		{"PATHS", false},
		{"MY_PATH", false},
		{"HOMEBREW_TOKEN", false},
		{"OPENAI_API_KEY", false},
		{"NODE_ENV", false},
		{"PYTHON_VERSION", false},
		{"GITHUB_TOKEN", false},
		{"LDAP_PASSWORD", false},
		{"OZONE_KEY", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r, got := envname.Check(tc.name)
			if got != tc.reserved {
				t.Fatalf("Check(%q) = %v, want %v", tc.name, got, tc.reserved)
			}
			if got && !strings.HasPrefix(r.Explain(tc.name), tc.name+" is reserved") {
				t.Errorf("Explain(%q) = %q: does not say the name is reserved", tc.name, r.Explain(tc.name))
			}
		})
	}
}

// TestTableShape keeps the table what its users assume: upper-case
// entries, each with a reason, none repeated.
func TestTableShape(t *testing.T) {
	seen := map[string]bool{}
	for _, r := range envname.Reserved {
		if r.Name != strings.ToUpper(r.Name) || r.Name == "" {
			t.Errorf("%q: names are upper case and non-empty", r.Name)
		}
		if r.Why == "" {
			t.Errorf("%q: no reason", r.Name)
		}
		if seen[r.Name] {
			t.Errorf("%q listed twice", r.Name)
		}
		seen[r.Name] = true
	}
}

// TestREADMEListsEveryName: the README's list of reserved names is this
// table, entry for entry.
func TestREADMEListsEveryName(t *testing.T) {
	b, err := os.ReadFile(filepath.Join("..", "..", "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	readme := string(b)
	for _, r := range envname.Reserved {
		want := "`" + r.Name + "`"
		if r.Prefix {
			want = "`" + r.Name + "*`"
		}
		if !strings.Contains(readme, want) {
			t.Errorf("README.md does not list %s", want)
		}
	}
}
