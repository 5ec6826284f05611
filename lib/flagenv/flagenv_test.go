package flagenv_test

import (
	"bytes"
	"errors"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/ozsecrets/oz/lib/flagenv"
)

type values struct {
	listen string
	dev    bool
	max    int
	grace  time.Duration
	dry    bool
}

// newSet declares one flag of each kind; --dry-run has no variable.
func newSet(env map[string]string, out io.Writer) (*flagenv.Set, *values) {
	v := &values{}
	s := flagenv.New("oztestd", flagenv.Help{
		Usage: []string{"oztestd [flags]   serve", "oztestd check     check"},
		About: "Serves the tests.",
	}, func(k string) string { return env[k] }, out)
	s.String(&v.listen, "listen", "OZ_TEST_LISTEN", "127.0.0.1:1", "address to serve on")
	s.Bool(&v.dev, "dev", "OZ_DEV", false, "development mode")
	s.Int(&v.max, "max", "OZ_TEST_MAX", 10, "largest")
	s.Duration(&v.grace, "grace", "OZ_TEST_GRACE", time.Hour, "grace")
	s.Bool(&v.dry, "dry-run", "", false, "write nothing")
	return s, v
}

func TestParse(t *testing.T) {
	tests := []struct {
		name string
		env  map[string]string
		args []string
		want values
	}{
		{"Defaults", nil, nil, values{listen: "127.0.0.1:1", max: 10, grace: time.Hour}},
		{"Env", map[string]string{"OZ_TEST_LISTEN": ":2", "OZ_DEV": "true", "OZ_TEST_MAX": "3", "OZ_TEST_GRACE": "90m"}, nil,
			values{listen: ":2", dev: true, max: 3, grace: 90 * time.Minute}},
		{"EmptyIsUnset", map[string]string{"OZ_TEST_LISTEN": "", "OZ_TEST_MAX": ""}, nil, values{listen: "127.0.0.1:1", max: 10, grace: time.Hour}},
		{"FlagWins", map[string]string{"OZ_TEST_LISTEN": ":2", "OZ_DEV": "true", "OZ_TEST_MAX": "lots"},
			[]string{"--listen", ":3", "--dev=false", "--max", "4", "--dry-run"},
			values{listen: ":3", max: 4, grace: time.Hour, dry: true}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, v := newSet(tt.env, io.Discard)
			if err := s.Parse(tt.args); err != nil {
				t.Fatal(err)
			}
			if *v != tt.want {
				t.Errorf("got %+v, want %+v", *v, tt.want)
			}
		})
	}
}

func TestUsageErrors(t *testing.T) {
	tests := []struct {
		name string
		env  map[string]string
		args []string
		want string
	}{
		{"UnknownFlag", nil, []string{"--nope"}, "flag provided but not defined: -nope"},
		{"BadFlag", nil, []string{"--max", "x"}, `invalid value "x" for flag -max`},
		{"Stray", nil, []string{"serve"}, `unexpected argument "serve"`},
		{"BadBool", map[string]string{"OZ_DEV": "maybe"}, nil, `OZ_DEV="maybe": not a boolean`},
		{"BadInt", map[string]string{"OZ_TEST_MAX": "lots"}, nil, `OZ_TEST_MAX="lots": not a number`},
		{"BadDuration", map[string]string{"OZ_TEST_GRACE": "a day"}, nil, `OZ_TEST_GRACE="a day": not a duration (e.g. 24h, 90m)`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var out bytes.Buffer
			s, _ := newSet(tt.env, &out)
			err := s.Parse(tt.args)
			if !flagenv.IsUsage(err) || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("got %v, want a usage error saying %q", err, tt.want)
			}
			if out.Len() > 0 {
				t.Errorf("printed %q: usage errors are main's to print", out.String())
			}
		})
	}
	t.Run("BothBadVariables", func(t *testing.T) {
		s, _ := newSet(map[string]string{"OZ_DEV": "maybe", "OZ_TEST_MAX": "lots"}, io.Discard)
		if err := s.Parse(nil); err == nil || !strings.Contains(err.Error(), "OZ_DEV") || !strings.Contains(err.Error(), "OZ_TEST_MAX") {
			t.Errorf("got %v, want both variables named", err)
		}
	})
}

func TestHelp(t *testing.T) {
	for _, arg := range []string{"-h", "--help", "-help"} {
		var out bytes.Buffer
		s, _ := newSet(map[string]string{"OZ_TEST_LISTEN": ":9"}, &out)
		if err := s.Parse([]string{arg}); !errors.Is(err, flagenv.ErrHelp) {
			t.Fatalf("%s: got %v, want ErrHelp", arg, err)
		}
		help := out.String()
		for _, want := range []string{
			"Usage:\n  oztestd [flags]   serve\n  oztestd check     check\n\nServes the tests.\n\n" +
				"Every flag but --dry-run has an OZ_… environment variable; the flag wins.\n" +
				"Exit codes: 0 success, 1 failure, 2 bad usage.\n\nFlags:\n",
			"  -listen string\n    \taddress to serve on (OZ_TEST_LISTEN) (default \"127.0.0.1:1\")\n", // the built-in default
			"  -dry-run\n    \twrite nothing\n",
			"  -grace duration\n    \tgrace (OZ_TEST_GRACE) (default 1h0m0s)\n",
		} {
			if !strings.Contains(help, want) {
				t.Errorf("%s: help lacks %q:\n%s", arg, want, help)
			}
		}
	}
}

func TestExit(t *testing.T) {
	s, _ := newSet(nil, io.Discard)
	tests := []struct {
		name    string
		err     error
		log     bool
		code    int
		stderr  string
		logline string
	}{
		{"OK", nil, true, 0, "", ""},
		{"Help", flagenv.ErrHelp, true, 0, "", ""},
		{"Usage", s.Usagef("--user is required"), true, 2, "oztestd: --user is required\nRun 'oztestd --help' for usage.\n", ""},
		{"UsageOfASubcommand", flagenv.UsageError{Err: errors.New("bad"), Cmd: "oztestd check"}, false, 2,
			"oztestd: bad\nRun 'oztestd check --help' for usage.\n", ""},
		{"FailureLogged", errors.New("disk full"), true, 1, "", `"msg":"oztestd failed","err":"disk full"`},
		{"FailurePrinted", errors.New("disk full"), false, 1, "oztestd: disk full\n", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var stderr, logs bytes.Buffer
			var log *slog.Logger
			if tt.log {
				log = slog.New(slog.NewJSONHandler(&logs, nil))
			}
			if code := flagenv.Exit("oztestd", tt.err, log, &stderr); code != tt.code {
				t.Errorf("code: got %d, want %d", code, tt.code)
			}
			if stderr.String() != tt.stderr {
				t.Errorf("stderr: got %q, want %q", stderr.String(), tt.stderr)
			}
			if !strings.Contains(logs.String(), tt.logline) || tt.logline == "" && logs.Len() > 0 {
				t.Errorf("log: got %q, want %q", logs.String(), tt.logline)
			}
		})
	}
}
