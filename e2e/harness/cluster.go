package harness

import (
	"bytes"
	"errors"
	"fmt"
	"os/exec"
	"path/filepath"
	"strings"
)

// Cluster is the whole system on a shared etcd cluster, the way it is
// deployed for availability: replicas of the resolver, the audit service
// and the secretstore, each its own process on its own port with
// --store etcd:ENDPOINT,…, each dialing every replica of the services it
// calls, and one gateway in front of every replica. A test stops, kills
// and restarts single replicas (Proc) while the others serve.
//
// The embedded System gives the gateway's address, the CA, a system
// admin's token and the clients; stop everything with Cluster.Stop, not
// System.Stop. System.Ports holds the gateway and each replica by name
// ("resolver-0", "secretstore-1", …), and each service's first replica
// under the service's name, for DialService.
type Cluster struct {
	*System
	Endpoints []string            // etcd's
	Addrs     map[string][]string // the replicas' addresses, by service

	procs map[string][]*Proc // by service: "resolver", "audit", "secretstore", "gateway"
	order []*Proc            // start order
}

// clusterServices are the replicated services, in start order.
var clusterServices = []string{"resolver", "audit", "secretstore"}

// StartCluster prepares dataDir as StartServices does (ozdev once, for the
// development PKI and the keyring; its bbolt files stay unused), issues a
// system admin's token in the etcd cluster at endpoints with
// `ozresolverd bootstrap`, and starts replicas processes of the resolver,
// the audit service and the secretstore on free ports, in that order,
// then one gateway listing them all, each once healthy. Every replica
// logs to <data-dir>/logs/<service>-<i>.log (the gateway to gateway.log).
func StartCluster(binDir, dataDir string, endpoints []string, replicas int) (*Cluster, error) {
	if replicas < 1 {
		return nil, fmt.Errorf("cluster: %d replicas", replicas)
	}
	if len(endpoints) == 0 {
		return nil, errors.New("cluster: no etcd endpoint")
	}
	dataDir, err := filepath.Abs(dataDir)
	if err != nil {
		return nil, err
	}
	prep, err := Start(binDir, dataDir)
	if err != nil {
		return nil, fmt.Errorf("prepare the data directory with ozdev: %w", err)
	}
	if err := prep.Stop(); err != nil {
		return nil, fmt.Errorf("stop ozdev: %w", err)
	}
	store := "etcd:" + strings.Join(endpoints, ",")
	token, err := bootstrapToken(binDir, dataDir, store)
	if err != nil {
		return nil, err
	}

	c := &Cluster{
		System: &System{
			BinDir: binDir, DataDir: dataDir, CAFile: prep.CAFile, AdminToken: token,
			Ports: map[string]string{}, stderr: &syncBuffer{},
		},
		Endpoints: endpoints,
		Addrs:     map[string][]string{},
		procs:     map[string][]*Proc{},
	}
	for _, name := range append(clusterServices, "gateway") {
		n := replicas
		if name == "gateway" {
			n = 1
		}
		for i := range n {
			addr, err := FreePort()
			if err != nil {
				return nil, err
			}
			c.Addrs[name] = append(c.Addrs[name], addr)
			if name != "gateway" {
				c.Ports[fmt.Sprintf("%s-%d", name, i)] = addr
			}
		}
		c.Ports[name] = c.Addrs[name][0]
	}
	c.Addr = c.Ports["gateway"]

	list := func(name string) string { return strings.Join(c.Addrs[name], ",") }
	pki := filepath.Join(dataDir, "pki")
	for _, name := range clusterServices {
		for i, addr := range c.Addrs[name] {
			args := []string{"--listen", addr, "--data-dir", dataDir, "--store", store}
			var bin string
			switch name {
			case "resolver":
				bin = "ozresolverd"
				args = append(args, "--secretstore-addr", list("secretstore"), "--audit-addr", list("audit"))
			case "audit":
				bin = "ozauditd"
				args = append(args, "--resolver-addr", list("resolver"), "--secretstore-addr", list("secretstore"))
			case "secretstore":
				bin = "ozsecretstored"
				args = append(args, "--resolver-addr", list("resolver"), "--audit-addr", list("audit"),
					"--kek-file", filepath.Join(dataDir, "keyring.json"))
			}
			c.add(name, fmt.Sprintf("%s-%d", name, i), addr, bin, false, args)
		}
	}
	c.add("gateway", "gateway", c.Addr, "ozgateway", true, []string{
		"--listen", c.Addr,
		"--tls-cert", filepath.Join(pki, "gateway.pem"), "--tls-key", filepath.Join(pki, "gateway-key.pem"),
		"--tls-ca", filepath.Join(pki, "ca.pem"),
		"--secretstore-addr", list("secretstore"), "--resolver-addr", list("resolver"), "--audit-addr", list("audit"),
		// As in StartServices: the load's unauthenticated calls must reach
		// the backends.
		"--auth-fail-per-minute", "0",
	})
	for _, p := range c.order {
		if err := p.Start(); err != nil {
			c.Stop()
			return nil, err
		}
	}
	return c, nil
}

// add makes the process of one replica (not started). Proc probes the
// address its Services holds under its name: each replica gets a
// Services of its own, sharing the cluster's binaries, data directory
// and CA.
func (c *Cluster) add(service, name, addr, bin string, http bool, args []string) {
	own := &Services{System: &System{
		BinDir: c.BinDir, DataDir: c.DataDir, CAFile: c.CAFile,
		Ports: map[string]string{name: addr}, stderr: &syncBuffer{},
	}}
	p := &Proc{
		Name: name, LogPath: filepath.Join(c.DataDir, "logs", name+".log"),
		s: own, bin: bin, args: args, http: http,
	}
	if !http {
		// The etcd namespaces start empty: a first start is explicit
		// (the resolver's holds the bootstrap admin already, and --init
		// gives it its store id all the same).
		p.firstArgs = []string{"--init"}
	}
	c.procs[service] = append(c.procs[service], p)
	c.order = append(c.order, p)
}

// bootstrapToken makes "admin" a system admin in the etcd-backed
// resolver store and returns a new token of it.
func bootstrapToken(binDir, dataDir, store string) (string, error) {
	cmd := exec.Command(filepath.Join(binDir, "ozresolverd"), "bootstrap",
		"--user", "admin", "--data-dir", dataDir, "--store", store)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("ozresolverd bootstrap: %v\n%s", err, errb.String())
	}
	token := strings.TrimSpace(out.String())
	if !strings.HasPrefix(token, "oz_") || strings.ContainsAny(token, " \n\t") {
		return "", fmt.Errorf("ozresolverd bootstrap printed no token (%d bytes)\n%s", len(token), errb.String())
	}
	return token, nil
}

// Proc returns replica i of the service called name ("resolver",
// "audit", "secretstore"; "gateway" has replica 0 only); it panics on
// any other.
func (c *Cluster) Proc(name string, i int) *Proc {
	ps := c.procs[name]
	if i < 0 || i >= len(ps) {
		panic(fmt.Sprintf("harness: no replica %d of %q", i, name))
	}
	return ps[i]
}

// Replicas returns every replica of the service called name.
func (c *Cluster) Replicas(name string) []*Proc { return c.procs[name] }

// Logs returns the log files of every process.
func (c *Cluster) Logs() []string {
	var out []string
	for _, p := range c.order {
		out = append(out, p.LogPath)
	}
	return out
}

// Stop stops every running process, in the reverse of the start order
// (the gateway first, the resolvers last), and returns the first error.
func (c *Cluster) Stop() error {
	var first error
	for i := len(c.order) - 1; i >= 0; i-- {
		if err := c.order[i].Stop(); err != nil && first == nil {
			first = err
		}
	}
	return first
}
