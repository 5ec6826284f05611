// Command ozmigrate copies a stateful service's data between its two kinds
// of store, a bbolt file and etcd, for moving a deployment from one to the
// other (and back):
//
//	ozmigrate --service resolver --from bolt:/var/lib/oz/resolver.db --to etcd:https://etcd-0:2379 \
//	    --store-tls-ca ca.pem --store-tls-cert client.pem --store-tls-key client-key.pem
//
// The etcd stores mirror the bbolt ones key for key (bucket B, key K is
// etcd key /oz/SERVICE/B/K, same bytes), so the copy decodes nothing: a
// secret's value stays the ciphertext it is stored as, and no value is ever
// printed, only counts. The destination must be empty; the copy is read
// back and compared with the source (counts and a SHA-256 of every pair)
// before success is reported. See package storecopy.
//
// The service must be stopped: a bbolt source is opened read-only and
// fails at once while the service holds its lock.
//
// Exit codes: 0 success, 1 failure, 2 bad usage.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"

	bolt "go.etcd.io/bbolt"
	bolterrors "go.etcd.io/bbolt/errors"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/ozsecrets/oz/lib/flagenv"
	"github.com/ozsecrets/oz/services/internal/storecopy"
	"github.com/ozsecrets/oz/services/internal/storeflag"
)

func main() {
	flagenv.Main("ozmigrate", nil, func(ctx context.Context) error {
		return run(ctx, os.Args[1:], os.Getenv, os.Stdout, os.Stderr)
	})
}

// service is a stateful service: its etcd namespace, and its daemon (to
// name in "stop the service first"). Every service keeps its records in a
// kv.Store, whose outbox event ids carry a random epoch: a copy needs no
// fix-up of any counter.
type service struct {
	namespace, daemon string
}

// services are the services with a store. The namespaces are those their
// daemons open (main_test.go checks them).
var services = map[string]service{
	"secretstore": {"/oz/secretstore/", "ozsecretstored"},
	"resolver":    {"/oz/resolver/", "ozresolverd"},
	"audit":       {"/oz/audit/", "ozauditd"},
}

const (
	// lockTimeout is how long a bbolt file's lock is waited for: a
	// running service holds it for good.
	lockTimeout = time.Second
	// connectTimeout bounds the first exchange with etcd.
	connectTimeout = 10 * time.Second
)

// config is what the flags say.
type config struct {
	name      string // of the service
	svc       service
	from, to  storeflag.Config
	dryRun    bool
	boltFirst bool // --from is the bolt file
}

// help is what --help says before the flags.
var help = flagenv.Help{
	Usage: []string{"ozmigrate --service SERVICE --from STORE --to STORE [flags]"},
	About: `Copies a service's data between a bbolt file and etcd, as stored: values are
copied as the bytes they are (secret values stay encrypted) and never printed,
only counts. One of --from and --to is bolt:PATH, the other etcd:ENDPOINTS.
Stop the service first. The destination must be empty (a new file, or no key
under the service's namespace); the copy is read back and compared with the
source (counts and a SHA-256 of every key and value) before success is reported.
A failed copy into a file removes what it wrote; one into etcd says how many
keys it wrote, to delete (etcdctl del --prefix NAMESPACE) before a retry.

  SERVICE  secretstore, resolver or audit (its etcd namespace: /oz/SERVICE/)
  STORE    bolt:PATH or etcd:ENDPOINT[,ENDPOINT…] (http://HOST:PORT or https://HOST:PORT)`,
}

// parse reads the flags, with the TLS files' defaults from the environment.
func parse(args []string, getenv func(string) string, stderr io.Writer) (*config, error) {
	set := flagenv.New("ozmigrate", help, getenv, stderr)
	var name, from, to string
	var tls storeflag.TLS
	c := &config{}
	set.String(&name, "service", "", "", "the service whose data to copy: secretstore, resolver or audit")
	set.String(&from, "from", "", "", "the store to copy from: bolt:PATH or etcd:ENDPOINT[,ENDPOINT…]")
	set.String(&to, "to", "", "", "the store to copy to, empty: bolt:PATH (a new file) or etcd:ENDPOINT[,ENDPOINT…]")
	set.Bool(&c.dryRun, "dry-run", "", false, "count what would be copied and check the destination is empty; write nothing")
	set.String(&tls.CA, "store-tls-ca", "OZ_STORE_TLS_CA", "", "CA bundle for etcd's certificates, with https:// endpoints; default: the system's")
	set.String(&tls.Cert, "store-tls-cert", "OZ_STORE_TLS_CERT", "", "client certificate for etcd, with https:// endpoints and --store-tls-key")
	set.String(&tls.Key, "store-tls-key", "OZ_STORE_TLS_KEY", "", "key of --store-tls-cert")
	if err := set.Parse(args); err != nil {
		return nil, err
	}
	var ok bool
	if c.svc, ok = services[name]; !ok {
		if name == "" {
			return nil, set.Usagef("--service: required: secretstore, resolver or audit")
		}
		return nil, set.Usagef("--service %q: want secretstore, resolver or audit", name)
	}
	c.name = name
	switch {
	case from == "":
		return nil, set.Usagef("--from: required: bolt:PATH or etcd:ENDPOINT[,ENDPOINT…]")
	case to == "":
		return nil, set.Usagef("--to: required: bolt:PATH or etcd:ENDPOINT[,ENDPOINT…]")
	}
	var err error
	if c.from, err = parseStore("--from", from, tls); err != nil {
		return nil, err
	}
	if c.to, err = parseStore("--to", to, tls); err != nil {
		return nil, err
	}
	if c.from.Kind == c.to.Kind {
		return nil, set.Usagef("--from %s:… and --to %s:…: one must be bolt:PATH and the other etcd:ENDPOINT[,ENDPOINT…]",
			c.from.Kind, c.to.Kind)
	}
	c.boltFirst = c.from.Kind == storeflag.Bolt
	return c, nil
}

// parseStore parses the value of --from or --to (flag) with
// storeflag.Parse, whose errors name the flag --store. The TLS flags are
// the etcd side's: the bolt side does not get them, lest it be refused for
// them.
func parseStore(flag, s string, tls storeflag.TLS) (storeflag.Config, error) {
	if !strings.HasPrefix(s, "etcd:") {
		tls = storeflag.TLS{}
	}
	c, err := storeflag.Parse(s, tls)
	if err != nil {
		msg := strings.Replace(err.Error(), "--store (OZ_STORE)", flag, 1)
		if !strings.HasPrefix(msg, flag) {
			msg = flag + ": " + msg
		}
		return storeflag.Config{}, flagenv.Usagef("%s", msg)
	}
	return c, nil
}

func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	c, err := parse(args, getenv, stderr)
	if err != nil {
		return err
	}
	etcdSide := c.to
	if !c.boltFirst {
		etcdSide = c.from
	}
	ns := c.svc.namespace
	fmt.Fprintf(stdout, "%s: %s → %s (etcd namespace %s)\n", c.name, c.from, c.to, ns)

	// etcd's own logs (retries, lost connections) are warnings on stderr.
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	cfg, err := etcdSide.EtcdClient(log)
	if err != nil {
		return err
	}
	cli, err := clientv3.New(cfg)
	if err != nil {
		return fmt.Errorf("%s: etcd client: %w", etcdFlag(c), err)
	}
	defer cli.Close()
	n, err := countEtcd(ctx, cli, ns)
	if err != nil {
		return fmt.Errorf("%s %s: %w", etcdFlag(c), etcdSide, err)
	}

	var res storecopy.Result
	if c.boltFirst {
		res, err = boltToEtcd(ctx, c, cli, n)
	} else {
		res, err = etcdToBolt(ctx, c, cli, n)
	}
	if err != nil {
		return err
	}
	verb, done := "copied", "verified"
	if c.dryRun {
		verb, done = "dry run: would copy", fmt.Sprintf("nothing written; %s is ready", c.to)
	}
	fmt.Fprintf(stdout, "%s %v; %s\n", verb, res, done)
	if res.EmptyBuckets > 0 {
		fmt.Fprintf(stdout, "(%d empty buckets not copied: etcd has no form for them, and %s creates its buckets when it opens a file)\n",
			res.EmptyBuckets, c.svc.daemon)
	}
	return nil
}

// etcdFlag names the flag of the etcd side.
func etcdFlag(c *config) string {
	if c.boltFirst {
		return "--to"
	}
	return "--from"
}

// countEtcd counts the keys under ns, within connectTimeout: the first
// exchange with etcd, which says where to look when there is no answer.
func countEtcd(ctx context.Context, cli *clientv3.Client, ns string) (int64, error) {
	cctx, cancel := context.WithTimeout(ctx, connectTimeout)
	defer cancel()
	resp, err := cli.Get(cctx, ns, clientv3.WithPrefix(), clientv3.WithCountOnly())
	if errors.Is(err, context.DeadlineExceeded) && ctx.Err() == nil {
		return 0, fmt.Errorf("no answer from etcd in %v: is it running there, and does it accept this client's TLS "+
			"(scheme, --store-tls-ca, --store-tls-cert)? %w", connectTimeout, err)
	}
	if err != nil {
		return 0, err
	}
	return resp.Count, nil
}

func boltToEtcd(ctx context.Context, c *config, cli *clientv3.Client, inEtcd int64) (storecopy.Result, error) {
	if inEtcd > 0 {
		return storecopy.Result{}, fmt.Errorf("--to %s: etcd holds %d keys under %s: copy only into an empty namespace", c.to, inEtcd, c.svc.namespace)
	}
	db, err := openSource(c)
	if err != nil {
		return storecopy.Result{}, err
	}
	defer db.Close()
	if c.dryRun {
		res, err := storecopy.SummarizeBolt(db)
		if err != nil {
			return res, fmt.Errorf("--from %s: %w", c.from, err)
		}
		return res, nonEmpty(c, res)
	}
	if err := checkBoltHasKeys(c, db); err != nil {
		return storecopy.Result{}, err
	}
	res, err := storecopy.BoltToEtcd(ctx, db, cli, c.svc.namespace)
	if err != nil {
		return res, fmt.Errorf("copy %s → %s: %w", c.from, c.to, err)
	}
	return res, nil
}

// openSource opens the bbolt source read-only, failing soon when the
// service holds it.
func openSource(c *config) (*bolt.DB, error) {
	path := c.from.Path
	if _, err := os.Stat(path); errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("--from %s: no such file", c.from)
	} else if err != nil {
		return nil, fmt.Errorf("--from %s: %w", c.from, err)
	}
	db, err := bolt.Open(path, 0o600, &bolt.Options{ReadOnly: true, Timeout: lockTimeout})
	if errors.Is(err, bolterrors.ErrTimeout) {
		return nil, fmt.Errorf("--from %s: the file is locked by another process: stop the service first (%s)", c.from, c.svc.daemon)
	}
	if err != nil {
		return nil, fmt.Errorf("--from %s: %w", c.from, err)
	}
	return db, nil
}

// checkBoltHasKeys refuses a source without a key: a wrong file, most
// likely.
func checkBoltHasKeys(c *config, db *bolt.DB) error {
	var src storecopy.Result
	err := db.View(func(tx *bolt.Tx) error {
		return tx.ForEach(func(_ []byte, b *bolt.Bucket) error {
			if k, _ := b.Cursor().First(); k != nil {
				src.Keys = 1 // at least
			}
			return nil
		})
	})
	if err != nil {
		return fmt.Errorf("--from %s: %w", c.from, err)
	}
	return nonEmpty(c, src)
}

// nonEmpty refuses an empty source: nothing to copy is a mistake (the
// wrong file, endpoint or --service).
func nonEmpty(c *config, src storecopy.Result) error {
	if src.Keys > 0 {
		return nil
	}
	where := "no key"
	if c.from.Kind == storeflag.Etcd {
		where = "no key under " + c.svc.namespace
	}
	return fmt.Errorf("--from %s: holds %s: nothing to copy (is it the %s's store?)", c.from, where, c.name)
}

func etcdToBolt(ctx context.Context, c *config, cli *clientv3.Client, inEtcd int64) (storecopy.Result, error) {
	if inEtcd == 0 {
		return storecopy.Result{}, nonEmpty(c, storecopy.Result{})
	}
	path := c.to.Path
	_, statErr := os.Stat(path)
	exists := statErr == nil
	if statErr != nil && !errors.Is(statErr, os.ErrNotExist) {
		return storecopy.Result{}, fmt.Errorf("--to %s: %w", c.to, statErr)
	}
	if c.dryRun {
		if exists {
			if err := checkDestFile(c, &bolt.Options{ReadOnly: true, Timeout: lockTimeout}); err != nil {
				return storecopy.Result{}, err
			}
		}
		res, err := storecopy.SummarizeEtcd(ctx, cli, c.svc.namespace)
		if err != nil {
			return res, fmt.Errorf("--from %s: %w", c.from, err)
		}
		return res, nonEmpty(c, res)
	}
	if !exists {
		if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
			return storecopy.Result{}, fmt.Errorf("--to %s: %w", c.to, err)
		}
	}
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: lockTimeout})
	if errors.Is(err, bolterrors.ErrTimeout) {
		return storecopy.Result{}, fmt.Errorf("--to %s: the file is locked by another process: stop the service first (%s)", c.to, c.svc.daemon)
	}
	if err != nil {
		return storecopy.Result{}, fmt.Errorf("--to %s: %w", c.to, err)
	}
	res, err := storecopy.EtcdToBolt(ctx, cli, c.svc.namespace, db)
	cerr := db.Close()
	if err == nil && cerr != nil {
		err = fmt.Errorf("close: %w", cerr)
	}
	if err != nil {
		if !exists {
			os.Remove(path) // it holds nothing of anyone's: this run made it
		}
		if errors.Is(err, storecopy.ErrNotEmpty) {
			return res, fmt.Errorf("--to %s: %w", c.to, err)
		}
		return res, fmt.Errorf("copy %s → %s: %w", c.from, c.to, err)
	}
	return res, nil
}

// checkDestFile opens the existing destination file (read-only for a dry
// run) and refuses it unless it holds no bucket.
func checkDestFile(c *config, opts *bolt.Options) error {
	db, err := bolt.Open(c.to.Path, 0o600, opts)
	if errors.Is(err, bolterrors.ErrTimeout) {
		return fmt.Errorf("--to %s: the file is locked by another process: stop the service first (%s)", c.to, c.svc.daemon)
	}
	if err != nil {
		return fmt.Errorf("--to %s: %w", c.to, err)
	}
	defer db.Close()
	if err := storecopy.CheckBoltEmpty(db); err != nil {
		return fmt.Errorf("--to %s: %w", c.to, err)
	}
	return nil
}
