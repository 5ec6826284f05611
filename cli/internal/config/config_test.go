package config_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ozsecrets/oz/cli/internal/config"
)

func env(m map[string]string) func(string) string {
	return func(k string) string { return m[k] }
}

func TestResolve(t *testing.T) {
	file := config.File{Addr: "gw.example:443", CAFile: "/etc/ca.pem", Token: "oz_file", Team: "acme"}
	tests := []struct {
		name string
		file config.File
		env  map[string]string
		want config.Settings
	}{
		{
			name: "Defaults",
			want: config.Settings{Addr: config.DefaultAddr},
		},
		{
			name: "File",
			file: file,
			want: config.Settings{Addr: "gw.example:443", CAFile: "/etc/ca.pem", Token: "oz_file", Team: "acme"},
		},
		{
			name: "EnvOverridesFile",
			file: file,
			env:  map[string]string{"OZ_ADDR": "other:7443", "OZ_TOKEN": "oz_env", "OZ_CA_FILE": "/tmp/ca.pem", "OZ_TEAM": "beta"},
			want: config.Settings{Addr: "other:7443", CAFile: "/tmp/ca.pem", Token: "oz_env", Team: "beta"},
		},
		{
			// $OZ_TOKEN_FILE wins over the file's token; $OZ_TOKEN over both.
			name: "TokenFileEnv",
			file: file,
			env:  map[string]string{"OZ_TOKEN_FILE": "/run/oz/token"},
			want: config.Settings{Addr: "gw.example:443", CAFile: "/etc/ca.pem", TokenFile: "/run/oz/token", Team: "acme"},
		},
		{
			name: "TokenEnvBeatsTokenFile",
			file: config.File{TokenFile: "/run/oz/token"},
			env:  map[string]string{"OZ_TOKEN": "oz_env", "OZ_TOKEN_FILE": "/other"},
			want: config.Settings{Addr: config.DefaultAddr, Token: "oz_env"},
		},
		{
			name: "FileTokenBeatsFileTokenFile",
			file: config.File{Token: "oz_file", TokenFile: "/run/oz/token"},
			want: config.Settings{Addr: config.DefaultAddr, Token: "oz_file"},
		},
		{
			name: "FileTokenFile",
			file: config.File{TokenFile: "/run/oz/token"},
			want: config.Settings{Addr: config.DefaultAddr, TokenFile: "/run/oz/token"},
		},
		{
			name: "EmptyEnvDoesNotOverride",
			file: file,
			env:  map[string]string{"OZ_TEAM": ""},
			want: config.Settings{Addr: "gw.example:443", CAFile: "/etc/ca.pem", Token: "oz_file", Team: "acme"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := config.Resolve(tt.file, env(tt.env))
			got.Source = nil
			if got.Addr != tt.want.Addr || got.CAFile != tt.want.CAFile || got.Token != tt.want.Token || got.TokenFile != tt.want.TokenFile || got.Team != tt.want.Team {
				t.Errorf("got %+v, want %+v", got, tt.want)
			}
		})
	}
}

func TestSources(t *testing.T) {
	s := config.Resolve(config.File{Team: "acme"}, env(map[string]string{"OZ_TOKEN": "t"}))
	want := map[string]string{"addr": "default", "team": "config file", "token": "env OZ_TOKEN"}
	for k, v := range want {
		if s.Source[k] != v {
			t.Errorf("source of %s: got %q, want %q", k, s.Source[k], v)
		}
	}
	if src, ok := s.Source["ca_file"]; ok {
		t.Errorf("source of ca_file: got %q, want none", src)
	}
}

func TestSaveLoad(t *testing.T) {
	path := filepath.Join(t.TempDir(), "oz", "config.json")
	if got, err := config.Load(path); err != nil || got != (config.File{}) {
		t.Fatalf("Load(missing) = %+v, %v; want empty, nil", got, err)
	}
	var f config.File
	for _, kv := range [][2]string{{"addr", "gw:1"}, {"ca_file", "/ca"}, {"token", " oz_x \n"}, {"token_file", "/run/oz/token"}, {"team", "acme"}} {
		if err := f.Set(kv[0], kv[1]); err != nil {
			t.Fatal(err)
		}
	}
	if err := config.Save(path, f); err != nil {
		t.Fatal(err)
	}
	got, err := config.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	if want := (config.File{Addr: "gw:1", CAFile: "/ca", Token: "oz_x", TokenFile: "/run/oz/token", Team: "acme"}); got != want {
		t.Errorf("got %+v, want %+v", got, want)
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if got := fi.Mode().Perm(); got != 0o600 {
		t.Errorf("got mode %v, want 0600", got)
	}
	b, _ := os.ReadFile(path)
	for _, k := range config.Keys() {
		if !strings.Contains(string(b), `"`+k+`"`) {
			t.Errorf("file %s lacks key %q", b, k)
		}
	}
}

func TestSetUnknownKey(t *testing.T) {
	var f config.File
	err := f.Set("adress", "x")
	if err == nil || !strings.Contains(err.Error(), "addr, ca_file, token, token_file, team") {
		t.Errorf("got %v, want an error listing the keys", err)
	}
}

func TestPath(t *testing.T) {
	if got, _ := config.Path(env(map[string]string{"OZ_CONFIG": "/x/c.json"})); got != "/x/c.json" {
		t.Errorf("got %q, want /x/c.json", got)
	}
	got, err := config.Path(env(nil))
	if err != nil {
		t.Skipf("no user config dir: %v", err)
	}
	if !strings.HasSuffix(got, filepath.Join("oz", "config.json")) {
		t.Errorf("got %q, want it to end in oz/config.json", got)
	}
}

func TestMaskToken(t *testing.T) {
	tok := "oz_abcdefghijklmnop"
	got := config.MaskToken(tok)
	if strings.Contains(got, "abcdef") || strings.Contains(got, "mnop") {
		t.Errorf("MaskToken = %q, shows part of the token", got)
	}
	if config.MaskToken("") != "" {
		t.Errorf("MaskToken(\"\") = %q, want empty", config.MaskToken(""))
	}
}

// TestReadTokenFile: the token is the file's content, trimmed; an empty,
// multi-word or oversized file is an error naming the file, never holding
// its content; --token-file (UseTokenFile) wins over every other source.
func TestReadTokenFile(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	good := write("good", "  oz_from_file\n")
	s := config.Resolve(config.File{Token: "oz_config"}, env(map[string]string{"OZ_TOKEN": "oz_env"}))
	s.UseTokenFile(good)
	if err := s.ReadTokenFile(); err != nil || s.Token != "oz_from_file" || s.Source["token"] != "file "+good {
		t.Errorf("got token %q (source %q), %v; want the file's", s.Token, s.Source["token"], err)
	}
	for name, content := range map[string]string{
		"empty":     "\n",
		"two-words": "oz_secret-part other-part",
		"big":       strings.Repeat("x", config.MaxTokenFileSize+1),
	} {
		s := config.Settings{TokenFile: write(name, content)}
		err := s.ReadTokenFile()
		if err == nil || !strings.Contains(err.Error(), s.TokenFile) || strings.Contains(err.Error(), "secret-part") {
			t.Errorf("%s: got %v, want an error naming the file and not its content", name, err)
		}
	}
	s = config.Settings{TokenFile: filepath.Join(dir, "missing")}
	if err := s.ReadTokenFile(); err == nil {
		t.Error("a missing token file: no error")
	}
}
