// Package config holds the CLI's connection settings: a JSON file under the
// user's config directory, overridden by OZ_* environment variables.
package config

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// DefaultAddr is the gateway address used when none is configured.
const DefaultAddr = "127.0.0.1:7443"

// Environment variables. Each overrides the config file key of the same
// meaning; EnvConfig overrides the config file's path.
const (
	EnvAddr      = "OZ_ADDR"
	EnvToken     = "OZ_TOKEN"
	EnvTokenFile = "OZ_TOKEN_FILE"
	EnvCAFile    = "OZ_CA_FILE"
	EnvTeam      = "OZ_TEAM"
	EnvConfig    = "OZ_CONFIG"
	// EnvRetries is how many times a call that got no answer is sent
	// again (package client); environment only, no config file key.
	EnvRetries = "OZ_RETRIES"
)

// File is the config file's content. Every key is optional.
type File struct {
	Addr   string `json:"addr,omitempty"`
	CAFile string `json:"ca_file,omitempty"`
	Token  string `json:"token,omitempty"`
	// TokenFile names a file holding the token, as --token-file does.
	TokenFile string `json:"token_file,omitempty"`
	Team      string `json:"team,omitempty"`
}

// key describes one config key: its name in the file, its environment
// variable and where it lives in File.
type key struct {
	name string
	env  string
	ptr  func(*File) *string
}

var keys = []key{
	{"addr", EnvAddr, func(f *File) *string { return &f.Addr }},
	{"ca_file", EnvCAFile, func(f *File) *string { return &f.CAFile }},
	{"token", EnvToken, func(f *File) *string { return &f.Token }},
	{"token_file", EnvTokenFile, func(f *File) *string { return &f.TokenFile }},
	{"team", EnvTeam, func(f *File) *string { return &f.Team }},
}

// Keys lists the config keys in file order.
func Keys() []string {
	names := make([]string, len(keys))
	for i, k := range keys {
		names[i] = k.name
	}
	return names
}

func lookup(name string) (key, bool) {
	for _, k := range keys {
		if k.name == name {
			return k, true
		}
	}
	return key{}, false
}

// Set sets one key of f. An empty value removes the key. Returns an error
// naming the valid keys for an unknown key.
func (f *File) Set(name, value string) error {
	k, ok := lookup(name)
	if !ok {
		return fmt.Errorf("unknown key %q (keys: %s)", name, strings.Join(Keys(), ", "))
	}
	*k.ptr(f) = strings.TrimSpace(value)
	return nil
}

// Path returns the config file's path: $OZ_CONFIG if set, else
// oz/config.json under os.UserConfigDir.
func Path(getenv func(string) string) (string, error) {
	if p := getenv(EnvConfig); p != "" {
		return p, nil
	}
	dir, err := os.UserConfigDir()
	if err != nil {
		return "", fmt.Errorf("find config directory: %w", err)
	}
	return filepath.Join(dir, "oz", "config.json"), nil
}

// Load reads the config file at path. A missing file is an empty config.
func Load(path string) (File, error) {
	var f File
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return f, nil
	}
	if err != nil {
		return f, fmt.Errorf("read config: %w", err)
	}
	if err := json.Unmarshal(b, &f); err != nil {
		return f, fmt.Errorf("read config %s: %w", path, err)
	}
	return f, nil
}

// Save writes f to path atomically, readable by its owner only (it may hold
// a token), creating the directory if needed.
func Save(path string, f File) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return fmt.Errorf("write config: %w", err)
	}
	b, err := json.MarshalIndent(f, "", "  ")
	if err != nil {
		return fmt.Errorf("write config: %w", err)
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), ".config-*.json")
	if err != nil {
		return fmt.Errorf("write config: %w", err)
	}
	defer os.Remove(tmp.Name())
	if err := tmp.Chmod(0o600); err != nil {
		tmp.Close()
		return fmt.Errorf("write config: %w", err)
	}
	if _, err := tmp.Write(append(b, '\n')); err != nil {
		tmp.Close()
		return fmt.Errorf("write config: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("write config: %w", err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("write config: %w", err)
	}
	return nil
}

// Settings are the effective connection settings.
type Settings struct {
	Addr   string
	CAFile string
	Token  string
	// TokenFile is the file the token is read from (ReadTokenFile), when
	// it comes from one.
	TokenFile string
	Team      string
	// Retries is $OZ_RETRIES as given ("": the default); client.Dial
	// reads it.
	Retries string
	// Source says where each key's value came from: "env OZ_ADDR",
	// "config file", "default" or "" (unset).
	Source map[string]string
}

// Resolve merges f with the environment: a non-empty environment variable
// wins over the file; Addr falls back to DefaultAddr.
func Resolve(f File, getenv func(string) string) Settings {
	merged := f
	src := map[string]string{}
	for _, k := range keys {
		p := k.ptr(&merged)
		switch v := strings.TrimSpace(getenv(k.env)); {
		case v != "":
			*p = v
			src[k.name] = "env " + k.env
		case *p != "":
			src[k.name] = "config file"
		}
	}
	if merged.Addr == "" {
		merged.Addr = DefaultAddr
		src["addr"] = "default"
	}
	// The token: $OZ_TOKEN, else $OZ_TOKEN_FILE, else the file's token,
	// else the file's token_file.
	switch {
	case src["token"] == "env "+EnvToken, src["token_file"] == "config file" && merged.Token != "":
		merged.TokenFile = ""
		delete(src, "token_file")
	case merged.TokenFile != "":
		merged.Token = ""
		src["token"] = "file " + merged.TokenFile
	}
	return Settings{
		Addr:      merged.Addr,
		CAFile:    merged.CAFile,
		Token:     merged.Token,
		TokenFile: merged.TokenFile,
		Team:      merged.Team,
		Retries:   strings.TrimSpace(getenv(EnvRetries)),
		Source:    src,
	}
}

// MaxTokenFileSize bounds a token file: tokens are short.
const MaxTokenFileSize = 4096

// UseTokenFile makes path the token's source, ahead of every other
// (the --token-file flag).
func (s *Settings) UseTokenFile(path string) {
	s.TokenFile, s.Token = path, ""
	if s.Source == nil {
		s.Source = map[string]string{}
	}
	s.Source["token"] = "file " + path
}

// ReadTokenFile reads the token from s.TokenFile, when set: the file's
// content without surrounding white space. Errors name the file, never
// its content.
func (s *Settings) ReadTokenFile() error {
	if s.TokenFile == "" {
		return nil
	}
	f, err := os.Open(s.TokenFile)
	if err != nil {
		return fmt.Errorf("read token file: %w", err)
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, MaxTokenFileSize+1))
	if err != nil {
		return fmt.Errorf("read token file %s: %w", s.TokenFile, err)
	}
	switch tok := strings.TrimSpace(string(b)); {
	case len(b) > MaxTokenFileSize:
		return fmt.Errorf("token file %s: more than %d bytes: not a token", s.TokenFile, MaxTokenFileSize)
	case tok == "":
		return fmt.Errorf("token file %s is empty", s.TokenFile)
	case strings.ContainsAny(tok, " \t\r\n"):
		return fmt.Errorf("token file %s: holds more than one line or word: not a token", s.TokenFile)
	default:
		s.Token = tok
	}
	return nil
}

// Get returns the value of one key of s.
func (s Settings) Get(name string) string {
	f := File{Addr: s.Addr, CAFile: s.CAFile, Token: s.Token, TokenFile: s.TokenFile, Team: s.Team}
	if k, ok := lookup(name); ok {
		return *k.ptr(&f)
	}
	return ""
}

// MaskToken hides a token for display: its "oz_" prefix (if any) and
// length, never its characters.
func MaskToken(tok string) string {
	if tok == "" {
		return ""
	}
	prefix := ""
	if strings.HasPrefix(tok, "oz_") {
		prefix = "oz_"
	}
	return fmt.Sprintf("%s******** (%d characters)", prefix, len(tok))
}
