package storeflag_test

import (
	"bytes"
	"crypto/tls"
	"errors"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"go.uber.org/zap"

	"github.com/ozsecrets/oz/lib/flagenv"
	"github.com/ozsecrets/oz/services/internal/pki"
	"github.com/ozsecrets/oz/services/internal/storeflag"
)

func TestParse(t *testing.T) {
	ca := storeflag.TLS{CA: "ca.pem"}
	pair := storeflag.TLS{Cert: "c.pem", Key: "k.pem"}
	tests := []struct {
		name  string
		store string
		tls   storeflag.TLS
		want  storeflag.Config
	}{
		{"Bolt", "bolt:/var/lib/oz/resolver.db", storeflag.TLS{}, storeflag.Config{Kind: storeflag.Bolt, Path: "/var/lib/oz/resolver.db"}},
		{"BoltRelativeWithColon", "bolt:data/a:b.db", storeflag.TLS{}, storeflag.Config{Kind: storeflag.Bolt, Path: "data/a:b.db"}},
		{"EtcdOne", "etcd:http://127.0.0.1:2379", storeflag.TLS{},
			storeflag.Config{Kind: storeflag.Etcd, Endpoints: []string{"http://127.0.0.1:2379"}}},
		{"EtcdMany", "etcd:https://e1:2379, https://[::1]:2379/,https://e3.oz.svc:2379", ca,
			storeflag.Config{Kind: storeflag.Etcd, Endpoints: []string{"https://e1:2379", "https://[::1]:2379", "https://e3.oz.svc:2379"}, TLS: ca}},
		{"EtcdClientCert", "etcd:https://e1:2379", pair,
			storeflag.Config{Kind: storeflag.Etcd, Endpoints: []string{"https://e1:2379"}, TLS: pair}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := storeflag.Parse(tt.store, tt.tls)
			if err != nil {
				t.Fatalf("Parse(%q): %v", tt.store, err)
			}
			if got.Kind != tt.want.Kind || got.Path != tt.want.Path || !slices.Equal(got.Endpoints, tt.want.Endpoints) || got.TLS != tt.want.TLS {
				t.Errorf("Parse(%q): got %+v, want %+v", tt.store, got, tt.want)
			}
		})
	}
}

func TestParseErrors(t *testing.T) {
	tests := []struct {
		name  string
		store string
		tls   storeflag.TLS
		want  string // in the error, which must also name a flag
	}{
		{"Empty", "", storeflag.TLS{}, "want bolt:PATH or etcd:ENDPOINT"},
		{"NoKind", "/var/lib/oz/resolver.db", storeflag.TLS{}, "want bolt:PATH or etcd:ENDPOINT"},
		{"UnknownKind", "consul:http://c:8500", storeflag.TLS{}, `unknown kind of store "consul"`},
		{"BoltNoPath", "bolt:", storeflag.TLS{}, "bolt:PATH needs the path"},
		{"BoltWithTLS", "bolt:x.db", storeflag.TLS{CA: "ca.pem"}, "--store-tls-ca (OZ_STORE_TLS_CA): only for --store etcd"},
		{"EtcdNoEndpoint", "etcd:", storeflag.TLS{}, "needs at least one endpoint"},
		{"EtcdEmptyEndpoint", "etcd:http://e1:2379,", storeflag.TLS{}, "endpoint 2: must be http://HOST:PORT"},
		{"EtcdNoScheme", "etcd:e1:2379", storeflag.TLS{}, "endpoint 1: must be http://HOST:PORT or https://HOST:PORT"},
		{"EtcdOtherScheme", "etcd:unix:///run/etcd.sock", storeflag.TLS{}, "must be http://HOST:PORT"},
		{"EtcdNoPort", "etcd:http://e1", storeflag.TLS{}, "must be http://HOST:PORT"},
		{"EtcdBadPort", "etcd:http://e1:99999", storeflag.TLS{}, "must be a number from 1 to 65535"},
		{"EtcdPath", "etcd:http://e1:2379/v3", storeflag.TLS{}, "with no path or query"},
		{"EtcdUserInfo", "etcd:https://root:hunter2@e1:2379", storeflag.TLS{}, "must not hold a user name or password"},
		{"EtcdMixedSchemes", "etcd:http://e1:2379,https://e2:2379", storeflag.TLS{}, "mix http:// and https://"},
		{"EtcdCertWithoutKey", "etcd:https://e1:2379", storeflag.TLS{Cert: "c.pem"}, "give both or neither"},
		{"EtcdTLSOverHTTP", "etcd:http://e1:2379", storeflag.TLS{CA: "ca.pem"}, "--store-tls-ca (OZ_STORE_TLS_CA): needs https://"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := storeflag.Parse(tt.store, tt.tls)
			if err == nil {
				t.Fatalf("Parse(%q): got nil error, want one saying %q", tt.store, tt.want)
			}
			if !strings.Contains(err.Error(), tt.want) || !strings.Contains(err.Error(), "--store") {
				t.Errorf("Parse(%q): got %q, want it to name the flag and say %q", tt.store, err, tt.want)
			}
			if strings.Contains(err.Error(), "hunter2") {
				t.Errorf("Parse(%q): the error holds the password: %q", tt.store, err)
			}
		})
	}
}

// FuzzParse: Parse never panics, and what it accepts prints back to a
// value it parses alike.
func FuzzParse(f *testing.F) {
	for _, s := range []string{"bolt:x.db", "etcd:http://127.0.0.1:2379", "etcd:https://a:1,https://[::1]:2", "etcd:http://u:p@h:1", ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		c, err := storeflag.Parse(s, storeflag.TLS{})
		if err != nil {
			return
		}
		again, err := storeflag.Parse(c.String(), storeflag.TLS{})
		if err != nil || again.String() != c.String() {
			t.Fatalf("Parse(%q) = %q, which parses as %q, %v", s, c, again, err)
		}
		for _, ep := range c.Endpoints {
			if strings.Contains(ep, "@") {
				t.Fatalf("Parse(%q): endpoint %q holds user info", s, ep)
			}
		}
	})
}

func TestFlags(t *testing.T) {
	env := map[string]string{
		"OZ_STORE":          "etcd:https://etcd.oz.svc:2379",
		"OZ_STORE_TLS_CA":   "/etc/oz/etcd/ca.crt",
		"OZ_STORE_TLS_CERT": "/etc/oz/etcd/tls.crt",
		"OZ_STORE_TLS_KEY":  "/etc/oz/etcd/tls.key",
	}
	tests := []struct {
		name    string
		env     map[string]string
		args    []string
		db      string
		want    string // Config.String(), "" for an error
		wantErr string
	}{
		{"Default", nil, nil, "", "bolt:/data/svc.db", ""},
		{"DB", nil, nil, "/other.db", "bolt:/other.db", ""},
		{"Flag", nil, []string{"--store", "bolt:/flag.db"}, "", "bolt:/flag.db", ""},
		{"Env", env, nil, "", "etcd:https://etcd.oz.svc:2379", ""},
		{"FlagOverridesEnv", env, []string{"--store", "etcd:https://e2:2379", "--store-tls-ca", "/ca2.pem"}, "", "etcd:https://e2:2379", ""},
		{"DBAndStore", nil, []string{"--store", "bolt:/flag.db"}, "/other.db", "", "--db and --store: give one"},
		{"TLSWithDefaultBolt", map[string]string{"OZ_STORE_TLS_CA": "/ca.pem"}, nil, "", "", "only for --store etcd"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			set := flagenv.New("svc", flagenv.Help{}, func(k string) string { return tt.env[k] }, io.Discard)
			sf := storeflag.Register(set)
			if err := set.Parse(tt.args); err != nil {
				t.Fatal(err)
			}
			c, err := sf.Config(tt.db, "/data/svc.db")
			switch {
			case tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)):
				t.Fatalf("Config: got %v, want an error saying %q", err, tt.wantErr)
			case tt.wantErr == "" && err != nil:
				t.Fatalf("Config: %v", err)
			case c.String() != tt.want:
				t.Errorf("Config: got %q, want %q", c, tt.want)
			}
		})
	}

	t.Run("HelpNamesTheVariables", func(t *testing.T) {
		var out bytes.Buffer
		set := flagenv.New("svc", flagenv.Help{}, func(string) string { return "" }, &out)
		storeflag.Register(set)
		set.PrintHelp()
		for _, n := range []string{"OZ_STORE)", "OZ_STORE_TLS_CA)", "OZ_STORE_TLS_CERT)", "OZ_STORE_TLS_KEY)"} {
			if !strings.Contains(out.String(), n) {
				t.Errorf("help lacks %s:\n%s", n, &out)
			}
		}
	})
}

func TestEtcdClient(t *testing.T) {
	dir := pki.Dir(filepath.Join(t.TempDir(), "pki"))
	if err := pki.EnsureDev(dir); err != nil {
		t.Fatal(err)
	}
	notPEM := filepath.Join(t.TempDir(), "not.pem")
	if err := os.WriteFile(notPEM, []byte("hello"), 0o600); err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.NewJSONHandler(io.Discard, nil))
	parse := func(t *testing.T, store string, tl storeflag.TLS) storeflag.Config {
		t.Helper()
		c, err := storeflag.Parse(store, tl)
		if err != nil {
			t.Fatal(err)
		}
		return c
	}

	t.Run("HTTP", func(t *testing.T) {
		cfg, err := parse(t, "etcd:http://127.0.0.1:2379", storeflag.TLS{}).EtcdClient(log)
		if err != nil || cfg.TLS != nil || !slices.Equal(cfg.Endpoints, []string{"http://127.0.0.1:2379"}) || cfg.Logger == nil {
			t.Errorf("got %+v, %v; want the endpoint, a logger and no TLS", cfg, err)
		}
	})
	t.Run("HTTPSMutual", func(t *testing.T) {
		tl := storeflag.TLS{CA: dir.CA(), Cert: dir.For("resolver").Cert, Key: dir.For("resolver").Key}
		cfg, err := parse(t, "etcd:https://127.0.0.1:2379", tl).EtcdClient(log)
		if err != nil {
			t.Fatal(err)
		}
		if cfg.TLS == nil || cfg.TLS.RootCAs == nil || len(cfg.TLS.Certificates) != 1 || cfg.TLS.MinVersion < tls.VersionTLS12 {
			t.Errorf("TLS: got %+v, want the CA and one client certificate", cfg.TLS)
		}
	})
	t.Run("HTTPSSystemRoots", func(t *testing.T) {
		cfg, err := parse(t, "etcd:https://127.0.0.1:2379", storeflag.TLS{}).EtcdClient(log)
		if err != nil || cfg.TLS == nil || cfg.TLS.RootCAs != nil {
			t.Errorf("got %+v, %v; want TLS with the system's roots", cfg.TLS, err)
		}
	})
	errTests := []struct {
		name string
		tls  storeflag.TLS
		want string
	}{
		{"MissingCA", storeflag.TLS{CA: filepath.Join(t.TempDir(), "none.pem")}, "--store-tls-ca"},
		{"CANotPEM", storeflag.TLS{CA: notPEM}, "no PEM certificate"},
		{"BadPair", storeflag.TLS{Cert: dir.For("resolver").Cert, Key: dir.For("audit").Key}, "--store-tls-cert"},
	}
	for _, tt := range errTests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := parse(t, "etcd:https://127.0.0.1:2379", tt.tls).EtcdClient(log)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("got %v, want an error naming %q", err, tt.want)
			}
		})
	}
	t.Run("NotEtcd", func(t *testing.T) {
		if _, err := parse(t, "bolt:x.db", storeflag.TLS{}).EtcdClient(log); err == nil {
			t.Error("got nil error for a bolt store")
		}
	})
}

// TestClientLogs: the etcd client's warnings join the service's logs,
// its debug and info lines do not.
func TestClientLogs(t *testing.T) {
	var out bytes.Buffer
	log := slog.New(slog.NewJSONHandler(&out, nil))
	c, err := storeflag.Parse("etcd:http://127.0.0.1:2379", storeflag.TLS{})
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := c.EtcdClient(log)
	if err != nil {
		t.Fatal(err)
	}
	lg := cfg.Logger.With(zap.String("target", "etcd-endpoints://0x1/#initially=[http://127.0.0.1:2379]"))
	lg.Info("chatter")
	lg.Warn("retrying of unary invoker failed", zap.Error(errors.New("no leader")), zap.Int("attempt", 1))
	got := out.String()
	if strings.Contains(got, "chatter") {
		t.Errorf("info line logged: %s", got)
	}
	for _, want := range []string{`"level":"WARN"`, `"msg":"retrying of unary invoker failed"`, `"component":"etcd-client"`,
		`"error":"no leader"`, `"attempt":1`, `"target":"etcd-endpoints://`} {
		if !strings.Contains(got, want) {
			t.Errorf("logs lack %s: %s", want, got)
		}
	}
}
