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
			if got.Addr != tt.want.Addr || got.CAFile != tt.want.CAFile || got.Token != tt.want.Token || got.Team != tt.want.Team {
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
	for _, kv := range [][2]string{{"addr", "gw:1"}, {"ca_file", "/ca"}, {"token", " oz_x \n"}, {"team", "acme"}} {
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
	if want := (config.File{Addr: "gw:1", CAFile: "/ca", Token: "oz_x", Team: "acme"}); got != want {
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
	if err == nil || !strings.Contains(err.Error(), "addr, ca_file, token, team") {
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
