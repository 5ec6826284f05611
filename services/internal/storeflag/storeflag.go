// Package storeflag is the --store flag of the stateful services: where a
// service keeps its data, a bbolt file or an etcd cluster.
//
//	--store bolt:PATH                       a bbolt file (the default: the service's --db)
//	--store etcd:ENDPOINT[,ENDPOINT…]       an etcd cluster; endpoints http://HOST:PORT or https://HOST:PORT
//	--store-tls-ca FILE                     CA bundle that signed etcd's certificates (https; default: the system's)
//	--store-tls-cert FILE, --store-tls-key FILE   client certificate for etcd (https; both or neither)
//
// Each flag has an environment variable, which the flag overrides:
// OZ_STORE, OZ_STORE_TLS_CA, OZ_STORE_TLS_CERT, OZ_STORE_TLS_KEY. They carry
// no service name, so that services share them (one ConfigMap in deploy/k8s);
// each service keeps its keys under its own etcd namespace.
//
// A service registers the flags, parses its flag set, then asks for its
// Config, passing its own --db value and default file:
//
//	sf := storeflag.Register(set) // set is a *flagenv.Set
//	… set.Parse(args) …
//	store, err := sf.Config(db, filepath.Join(dataDir, "secretstore.db"))
//	switch store.Kind {
//	case storeflag.Bolt: // boltstore.Open(store.Path, …)
//	case storeflag.Etcd: // cfg, err := store.EtcdClient(log); etcdstore.Open(ctx, cfg, namespace)
//	}
package storeflag

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/ozsecrets/oz/lib/flagenv"
)

// Kind is the kind of store.
type Kind int

const (
	Bolt Kind = iota + 1 // a bbolt file
	Etcd                 // an etcd cluster
)

func (k Kind) String() string {
	switch k {
	case Bolt:
		return "bolt"
	case Etcd:
		return "etcd"
	}
	return "unknown"
}

// Config is a parsed --store and its TLS options.
type Config struct {
	Kind      Kind
	Path      string   // Bolt: the database file
	Endpoints []string // Etcd: http://HOST:PORT or https://HOST:PORT, all of one scheme
	TLS       TLS      // Etcd over https
}

// TLS are the files of --store-tls-ca, --store-tls-cert and --store-tls-key.
type TLS struct{ CA, Cert, Key string }

// String is the store for logs: "bolt:PATH" or "etcd:ENDPOINT,…" (endpoints
// never hold credentials: Parse refuses them).
func (c Config) String() string {
	switch c.Kind {
	case Bolt:
		return "bolt:" + c.Path
	case Etcd:
		return "etcd:" + strings.Join(c.Endpoints, ",")
	}
	return ""
}

// Flags holds the store flags of one flag set.
type Flags struct {
	store string
	tls   TLS
}

// Register defines --store, --store-tls-ca, --store-tls-cert and
// --store-tls-key on s, with the variables OZ_STORE, OZ_STORE_TLS_CA,
// OZ_STORE_TLS_CERT and OZ_STORE_TLS_KEY.
func Register(s *flagenv.Set) *Flags {
	f := &Flags{}
	s.String(&f.store, "store", "OZ_STORE", "",
		"where the data lives: bolt:PATH (a bbolt file) or etcd:ENDPOINT[,ENDPOINT…] (http:// or https:// endpoints); default: --db")
	s.String(&f.tls.CA, "store-tls-ca", "OZ_STORE_TLS_CA", "",
		"CA bundle for etcd's certificates, with https:// endpoints; default: the system's")
	s.String(&f.tls.Cert, "store-tls-cert", "OZ_STORE_TLS_CERT", "",
		"client certificate for etcd, with https:// endpoints and --store-tls-key")
	s.String(&f.tls.Key, "store-tls-key", "OZ_STORE_TLS_KEY", "", "key of --store-tls-cert")
	return f
}

// Config returns the store the flags choose, once the flag set is parsed.
// db is the service's --db flag (a bbolt file; "" when not given) and
// defaultDB the file used when neither --db nor --store is given; a
// service takes one or the other.
func (f *Flags) Config(db, defaultDB string) (Config, error) {
	switch {
	case f.store == "" && db != "":
		return Parse("bolt:"+db, f.tls)
	case f.store == "":
		return Parse("bolt:"+defaultDB, f.tls)
	case db != "":
		return Config{}, errors.New("--db and --store: give one (--db PATH is --store bolt:PATH)")
	}
	return Parse(f.store, f.tls)
}

const (
	flagStore = "--store (OZ_STORE)"
	flagCA    = "--store-tls-ca (OZ_STORE_TLS_CA)"
	flagCert  = "--store-tls-cert (OZ_STORE_TLS_CERT)"
	flagKey   = "--store-tls-key (OZ_STORE_TLS_KEY)"
	wantStore = "want bolt:PATH or etcd:ENDPOINT[,ENDPOINT…]"
)

// Parse parses a --store value with its TLS options.
func Parse(store string, t TLS) (Config, error) {
	kind, rest, ok := strings.Cut(store, ":")
	switch {
	case kind == "bolt" && ok:
		if rest == "" {
			return Config{}, fmt.Errorf("%s: bolt:PATH needs the path of a file", flagStore)
		}
		if t != (TLS{}) {
			return Config{}, fmt.Errorf("%s: only for --store etcd:…", tlsFlag(t))
		}
		return Config{Kind: Bolt, Path: rest}, nil
	case kind == "etcd" && ok:
		return parseEtcd(rest, t)
	case store == "":
		return Config{}, fmt.Errorf("%s: empty: %s", flagStore, wantStore)
	}
	if len(kind) > 16 || !ok {
		return Config{}, fmt.Errorf("%s: %s", flagStore, wantStore)
	}
	return Config{}, fmt.Errorf("%s: unknown kind of store %q: %s", flagStore, kind, wantStore)
}

// tlsFlag names the first TLS flag set in t.
func tlsFlag(t TLS) string {
	switch {
	case t.CA != "":
		return flagCA
	case t.Cert != "":
		return flagCert
	}
	return flagKey
}

func parseEtcd(list string, t TLS) (Config, error) {
	if strings.TrimSpace(list) == "" {
		return Config{}, fmt.Errorf("%s: etcd:ENDPOINT[,ENDPOINT…] needs at least one endpoint", flagStore)
	}
	c := Config{Kind: Etcd, TLS: t}
	scheme := ""
	for i, ep := range strings.Split(list, ",") {
		u, err := endpoint(strings.TrimSpace(ep))
		if err != nil {
			return Config{}, fmt.Errorf("%s: endpoint %d: %w", flagStore, i+1, err)
		}
		if scheme != "" && u.Scheme != scheme {
			return Config{}, fmt.Errorf("%s: endpoints mix http:// and https://: use one", flagStore)
		}
		scheme = u.Scheme
		c.Endpoints = append(c.Endpoints, u.String())
	}
	if (t.Cert == "") != (t.Key == "") {
		return Config{}, fmt.Errorf("%s and %s: give both or neither", flagCert, flagKey)
	}
	if scheme == "http" && t != (TLS{}) {
		return Config{}, fmt.Errorf("%s: needs https:// endpoints", tlsFlag(t))
	}
	return c, nil
}

// endpoint parses one etcd endpoint, http://HOST:PORT or https://HOST:PORT.
func endpoint(s string) (*url.URL, error) {
	const rule = "must be http://HOST:PORT or https://HOST:PORT"
	u, err := url.Parse(s)
	if err != nil || u.Scheme != "http" && u.Scheme != "https" || u.Opaque != "" {
		return nil, errors.New(rule)
	}
	if u.User != nil {
		// Not echoed: it may hold a password.
		return nil, errors.New("must not hold a user name or password: etcd takes a client certificate (--store-tls-cert)")
	}
	host, port, err := net.SplitHostPort(u.Host)
	if err != nil || host == "" {
		return nil, fmt.Errorf("%q: %s", s, rule)
	}
	if p, err := strconv.Atoi(port); err != nil || p < 1 || p > 65535 {
		return nil, fmt.Errorf("%q: port %q: must be a number from 1 to 65535", s, port)
	}
	if u.Path != "" && u.Path != "/" || u.RawQuery != "" || u.Fragment != "" || u.ForceQuery {
		return nil, fmt.Errorf("%q: %s, with no path or query", s, rule)
	}
	return &url.URL{Scheme: u.Scheme, Host: u.Host}, nil
}

// Dial settings of the etcd client.
const (
	dialTimeout      = 5 * time.Second
	keepAliveTime    = 30 * time.Second // ping an idle connection this often,
	keepAliveTimeout = 10 * time.Second // and give it up after this long without an answer
)

// EtcdClient returns the configuration of an etcd client for c (of kind
// Etcd), loading the TLS files. The client's own logs (warnings and
// errors: lost connections, retries) go to log.
func (c Config) EtcdClient(log *slog.Logger) (clientv3.Config, error) {
	if c.Kind != Etcd {
		return clientv3.Config{}, fmt.Errorf("store %s is not etcd", c.Kind)
	}
	cfg := clientv3.Config{
		Endpoints:            c.Endpoints,
		DialTimeout:          dialTimeout,
		DialKeepAliveTime:    keepAliveTime,
		DialKeepAliveTimeout: keepAliveTimeout,
		Logger:               zapToSlog(log),
	}
	if !strings.HasPrefix(c.Endpoints[0], "https://") {
		return cfg, nil
	}
	tc := &tls.Config{MinVersion: tls.VersionTLS12}
	if c.TLS.CA != "" {
		pem, err := os.ReadFile(c.TLS.CA)
		if err != nil {
			return clientv3.Config{}, fmt.Errorf("%s: %w", flagCA, err)
		}
		tc.RootCAs = x509.NewCertPool()
		if !tc.RootCAs.AppendCertsFromPEM(pem) {
			return clientv3.Config{}, fmt.Errorf("%s: %s: no PEM certificate found", flagCA, c.TLS.CA)
		}
	}
	if c.TLS.Cert != "" {
		pair, err := tls.LoadX509KeyPair(c.TLS.Cert, c.TLS.Key)
		if err != nil {
			return clientv3.Config{}, fmt.Errorf("%s and %s: %w", flagCert, flagKey, err)
		}
		tc.Certificates = []tls.Certificate{pair}
	}
	cfg.TLS = tc
	return cfg, nil
}
