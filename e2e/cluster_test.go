package e2e_test

import (
	"bytes"
	"context"
	"crypto/ecdh"
	"crypto/hpke"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	mrand "math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/ozsecrets/oz/e2e/harness"
	"github.com/ozsecrets/oz/lib/etcdtest"
	auditv1 "github.com/ozsecrets/oz/proto/gen/oz/audit/v1"
	scopev1 "github.com/ozsecrets/oz/proto/gen/oz/scope/v1"
	secretsv1 "github.com/ozsecrets/oz/proto/gen/oz/secrets/v1"
)

// The system on a three-member etcd cluster with two replicas of every
// service (issue 7): a mixed load through the gateway while an etcd
// member and single replicas of the services die and come back. It reuses
// the audit tests' operations (op), checks (checkOps, verifyWithCLI,
// checkNoPlanted) and fixture type, on harness.StartCluster.

// TestClusterFaults runs secret creates and updates (planted values), run
// resolutions, and agent and environment creates from several goroutines
// through the gateway while it kills the etcd leader (no leadership
// hand-over) and restarts it ~2s later; SIGKILLs one replica of the
// secretstore, of the resolver and of the audit service and restarts each;
// and stops an etcd follower for ~2s. Afterwards: every acknowledged
// secret write is there with its acknowledged version and value (or a
// later one, from a write that failed in flight); every acknowledged
// agent, environment and run exists; every acknowledged operation has
// exactly one event, an operation that failed in flight at most one (one
// when what it creates exists), and no event id appears twice; the chains
// verify with `oz audit verify`, on the server and as exports; no planted
// value is in an export, a service log, the data directory or etcd's files.
func TestClusterFaults(t *testing.T) {
	began := time.Now()
	root := t.TempDir()
	etcd, err := etcdtest.New(etcdtest.Config{Members: 3, Dir: filepath.Join(root, "etcd")})
	if err != nil {
		t.Fatalf("start etcd: %v", err)
	}
	t.Cleanup(func() {
		etcd.Close()
		if t.Failed() {
			t.Logf("etcd warnings and errors (last 64 KiB):\n%s", etcd.Logs())
		}
	})
	cl, err := harness.StartCluster(binDir, filepath.Join(root, "data"), etcd.Endpoints(), 2)
	if err != nil {
		t.Fatalf("start cluster: %v", err)
	}
	t.Cleanup(func() {
		if err := cl.Stop(); err != nil {
			t.Errorf("stop cluster: %v", err)
		}
	})
	f, priv := newClusterFixture(t, cl)
	setupTime := time.Since(began)

	// The load, and the faults meanwhile.
	const workers, prefix = 8, "cf"
	stop := make(chan struct{})
	done := make(chan []*clusterWorker, 1)
	loadStart := time.Now()
	go func() { done <- runClusterLoad(f, prefix, workers, stop) }()
	var windows []window
	abort := func(format string, args ...any) {
		close(stop)
		<-done
		t.Fatalf(format, args...)
	}
	// etcd: a member dies and comes back; its clients fail over to the
	// others, and a new leader is elected when it led.
	etcdFault := func(what string, i int, kill bool) {
		w := window{name: fmt.Sprintf("etcd %s m%d", what, i), from: time.Now()}
		if kill {
			etcd.Kill(i)
		} else {
			etcd.Stop(i)
		}
		time.Sleep(2 * time.Second)
		if err := etcd.Restart(i); err != nil {
			abort("%s: %v", w.name, err)
		}
		// Clients reconnect to the member within their backoff; an
		// operation that failed just after is in flight of the fault too.
		w.till = time.Now().Add(time.Second)
		windows = append(windows, w)
	}
	replicaFault := func(service string, i int) {
		p := cl.Proc(service, i)
		w := window{name: p.Name, from: time.Now()}
		err := p.Kill()
		if err == nil {
			time.Sleep(200 * time.Millisecond)
			err = p.Start()
		}
		if err != nil {
			abort("kill and restart %s: %v", p.Name, err)
		}
		w.till = time.Now()
		if service != "audit" { // which no operation waits for
			windows = append(windows, w)
		}
	}

	time.Sleep(1500 * time.Millisecond)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	leader, err := etcd.Leader(ctx)
	cancel()
	if err != nil {
		abort("find etcd's leader: %v", err)
	}
	etcdFault("leader killed", leader, true)
	time.Sleep(time.Second)
	replicaFault("secretstore", 0)
	time.Sleep(time.Second)
	replicaFault("resolver", 1)
	time.Sleep(time.Second)
	replicaFault("audit", 0)
	time.Sleep(time.Second)
	ctx, cancel = context.WithTimeout(context.Background(), 5*time.Second)
	leader, err = etcd.Leader(ctx)
	cancel()
	if err != nil {
		abort("find etcd's leader: %v", err)
	}
	etcdFault("follower stopped", (leader+1)%len(etcd.Members), false)
	time.Sleep(2 * time.Second)
	close(stop)
	ws := <-done
	loadTime := time.Since(loadStart)

	var ops []*op
	for _, w := range ws {
		ops = append(ops, w.ops...)
	}
	inWindow := func(o *op) bool {
		return slices.ContainsFunc(windows, func(w window) bool { return o.start.Before(w.till) && o.end.After(w.from) })
	}
	acked, inFlight, failed := 0, 0, 0
	for _, o := range ops {
		switch {
		case o.wantEvent():
			acked++
		case inWindow(o):
			inFlight++
		default:
			if failed++; failed <= 10 {
				t.Logf("failed outside any fault: %s %s: %s: %s", o.kind, o.reqID, o.code, o.msg)
			}
		}
	}
	if acked < 200 {
		t.Errorf("only %d operations acknowledged: the load proves little", acked)
	}

	// Before the log is read: these checks resolve runs, whose events
	// must be in the chains that are compared with `oz audit verify`.
	checkStart := time.Now()
	secretsChecked := checkClusterState(t, f, priv, ws)
	stateTime := time.Since(checkStart)

	chains, _ := f.waitDelivered(t, prefix, func(byReq map[string][]*auditv1.Event) bool {
		for _, o := range ops {
			if o.ownEvent() && len(byReq[o.reqID]) == 0 {
				return false
			}
		}
		return true
	})
	deliverTime := time.Since(checkStart) - stateTime
	byReq := byRequest(chains, prefix)
	want, got := checkOps(t, ops, byReq, windows)
	table, same := actionTable(want, got)
	if !same {
		t.Errorf("events per action differ from the operations that committed:\n%s", table)
	}
	perEmitter := checkIDOrder(t, chains) // no event id twice
	files := f.verifyWithCLI(t, chains)
	checkNoPlanted(t, f.sys, f.planted, files)
	etcdFiles, etcdBytes := checkNoCanary(t, etcd.Dir)
	if logs := cl.Logs(); len(logs) != 7 {
		t.Errorf("%d service logs, want 7: %v", len(logs), logs)
	}

	committed, events := 0, 0
	for _, o := range ops {
		if !o.wantEvent() && len(byReq[o.reqID]) > 0 {
			committed++
		}
		events += len(byReq[o.reqID])
	}
	var faults []string
	for _, w := range windows {
		faults = append(faults, fmt.Sprintf("%s %v", w.name, w.till.Sub(w.from).Round(time.Millisecond)))
	}
	t.Logf("setup %v; load %v, %d operations by %d workers (%.0f/s), faults: %s; "+
		"%d acknowledged, %d failed in flight of a fault (%d of them committed, with their event), %d failed otherwise; "+
		"%d events of the load (by emitter %v), chains: system %d, acme %d, beta %d; "+
		"%d secrets checked for version and value; %d planted values, none in %d exports, the data directory, or %d etcd files (%d MiB); checks %v (state %v, waiting for delivery %v), total %v\n%s",
		setupTime.Round(time.Millisecond), loadTime.Round(time.Millisecond), len(ops), workers, float64(len(ops))/loadTime.Seconds(),
		strings.Join(faults, ", "), acked, inFlight, committed, failed,
		events, perEmitter, len(chains["system"]), len(chains["teams/acme"]), len(chains["teams/beta"]),
		secretsChecked, len(f.planted), len(files), etcdFiles, etcdBytes>>20,
		time.Since(checkStart).Round(time.Millisecond), stateTime.Round(time.Millisecond), deliverTime.Round(time.Millisecond), time.Since(began).Round(time.Millisecond), table)
}

// newClusterFixture is newAuditFixture on a cluster: newTeam, a runner of
// acme, two team secrets FIXED_A and FIXED_B, an environment "ops" listing
// them, and gRPC clients through the gateway. It returns the private key
// of the fixture's recipient, to open what runs resolve.
func newClusterFixture(t *testing.T, cl *harness.Cluster) (*auditFixture, hpke.PrivateKey) {
	t.Helper()
	f := &auditFixture{sys: cl.System}
	f.tm = newTeam(t, f.sys)
	f.runner = newRunner(t, f.sys, "runner-a", "acme")
	conn, err := f.sys.Dial()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	f.conn = conn
	f.secrets = secretsv1.NewSecretServiceClient(conn)
	f.agents = scopev1.NewAgentServiceClient(conn)
	f.envs = scopev1.NewEnvironmentServiceClient(conn)
	f.tokens = scopev1.NewTokenServiceClient(conn)
	f.runs = scopev1.NewRunServiceClient(conn)
	f.audit = auditv1.NewAuditServiceClient(conn)
	f.addScheduler(t)

	priv, err := hpke.DHKEM(ecdh.X25519()).GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	f.recipient = &scopev1.RecipientKey{KemId: 0x0020, PublicKey: priv.PublicKey().Bytes()}

	ctx := harness.WithToken(context.Background(), f.tm.alice)
	for _, name := range []string{"FIXED_A", "FIXED_B"} {
		if _, err := f.secrets.CreateSecret(ctx, &secretsv1.CreateSecretRequest{
			Parent: "teams/acme", SecretId: name, Value: []byte(f.plant()),
		}); err != nil {
			t.Fatalf("create %s: %v", name, err)
		}
	}
	if _, err := f.envs.CreateEnvironment(ctx, &scopev1.CreateEnvironmentRequest{
		Parent: "teams/acme", EnvironmentId: "ops", SecretNames: []string{"FIXED_A", "FIXED_B"},
	}); err != nil {
		t.Fatalf("create environment: %v", err)
	}
	return f, priv
}

// secretWrite is one create or update of a secret's value by the load.
type secretWrite struct {
	op      *op
	value   string
	version int64 // acknowledged; 0 when the write failed
}

// clusterWorker runs operations one after another; each secret it writes
// is its own, so its writes of one secret are in order.
type clusterWorker struct {
	f      *auditFixture
	id     int
	prefix string
	rng    *mrand.Rand
	n      int
	ops    []*op

	secrets []string                  // ids of the secrets it created
	writes  map[string][]*secretWrite // by secret id, in order
	made    []*op                     // acknowledged agent, environment and run creates
}

// runClusterLoad runs workers until stop is closed.
func runClusterLoad(f *auditFixture, prefix string, workers int, stop <-chan struct{}) []*clusterWorker {
	c := ctxs{
		alice:  harness.WithToken(context.Background(), f.tm.alice),
		runner: harness.WithToken(context.Background(), f.runner),
		cron:   harness.WithToken(context.Background(), f.cron),
	}
	ws := make([]*clusterWorker, workers)
	var wg sync.WaitGroup
	for i := range ws {
		ws[i] = &clusterWorker{f: f, id: i, prefix: prefix, rng: mrand.New(mrand.NewPCG(uint64(i), 7)), writes: map[string][]*secretWrite{}}
		wg.Add(1)
		go func(w *clusterWorker) {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				w.step(c)
			}
		}(ws[i])
	}
	wg.Wait()
	return ws
}

// call runs fn with the request id of o and records its answer, as the
// audit tests' workers do.
func (w *clusterWorker) call(o *op, ctx context.Context, fn func(context.Context) error) error {
	return (&loadWorker{}).call(o, ctx, fn)
}

// step runs one operation, chosen at random.
func (w *clusterWorker) step(c ctxs) {
	w.n++
	suffix := fmt.Sprintf("%s-w%02d-%05d", w.prefix, w.id, w.n)
	upper := strings.ToUpper(strings.ReplaceAll(suffix, "-", "_"))
	o := &op{worker: w.id, n: w.n, reqID: suffix, team: "acme", outcome: auditv1.Outcome_OUTCOME_OK}
	w.ops = append(w.ops, o)
	f := w.f
	r := w.rng.IntN(100)
	switch {
	case r < 25 && len(w.secrets) > 0: // secret update
		id := w.secrets[w.rng.IntN(len(w.secrets))]
		name := "teams/acme/secrets/" + id
		o.kind, o.action, o.resource = "secret.update", "secret.update", name
		wr := &secretWrite{op: o, value: f.plant()}
		w.writes[id] = append(w.writes[id], wr)
		_ = w.call(o, c.alice, func(ctx context.Context) error {
			resp, err := f.secrets.UpdateSecret(ctx, &secretsv1.UpdateSecretRequest{Name: name, Value: []byte(wr.value)})
			wr.version = resp.GetSecret().GetValueVersion()
			return err
		})
	case r < 50: // secret create
		id := "S_" + upper
		name := "teams/acme/secrets/" + id
		o.kind, o.action, o.resource = "secret.create", "secret.create", name
		o.exists = f.exists(c.alice, func(ctx context.Context) error {
			_, err := f.secrets.GetSecret(ctx, &secretsv1.GetSecretRequest{Name: name})
			return err
		})
		wr := &secretWrite{op: o, value: f.plant()}
		w.writes[id] = append(w.writes[id], wr)
		if w.call(o, c.alice, func(ctx context.Context) error {
			resp, err := f.secrets.CreateSecret(ctx, &secretsv1.CreateSecretRequest{Parent: "teams/acme", SecretId: id, Value: []byte(wr.value)})
			wr.version = resp.GetSecret().GetValueVersion()
			return err
		}) == nil {
			w.secrets = append(w.secrets, id)
		}
	case r < 85: // run resolution
		runID := "r-" + suffix
		o.kind, o.action, o.resource, o.runID = "run.resolve", "run.resolve", "teams/acme/runs/"+runID, runID
		rc := &scopev1.RunContext{Trigger: scopev1.Trigger_TRIGGER_SCHEDULE}
		if r%2 == 0 {
			rc.Environment = "ops"
		} else {
			names := []string{"FIXED_A", "FIXED_B"}
			if len(w.secrets) > 0 {
				names = append(names, w.secrets[w.rng.IntN(len(w.secrets))])
			}
			rc.Secrets = &scopev1.SecretNameList{Names: names}
		}
		ticket, ok := f.startRun(&w.ops, o, c, rc)
		if !ok {
			return
		}
		o.exists = f.exists(c.alice, resolvedRun(f.runs, o.resource))
		if w.call(o, c.runner, func(ctx context.Context) error {
			_, err := f.runs.ResolveRun(ctx, &scopev1.ResolveRunRequest{Parent: "teams/acme", Ticket: ticket, Recipient: f.recipient})
			return err
		}) == nil {
			w.made = append(w.made, o)
		}
	case r < 93: // agent create
		id := "a-" + suffix
		name := "teams/acme/agents/" + id
		o.kind, o.action, o.resource = "agent.create", "agent.create", name
		o.exists = f.exists(c.alice, func(ctx context.Context) error {
			_, err := f.agents.GetAgent(ctx, &scopev1.GetAgentRequest{Name: name})
			return err
		})
		if w.call(o, c.alice, func(ctx context.Context) error {
			_, err := f.agents.CreateAgent(ctx, &scopev1.CreateAgentRequest{Parent: "teams/acme", AgentId: id, SecretNames: []string{"AGENT_ONLY_" + upper}})
			return err
		}) == nil {
			w.made = append(w.made, o)
		}
	default: // environment create
		id := "e-" + suffix
		name := "teams/acme/environments/" + id
		o.kind, o.action, o.resource = "environment.create", "environment.create", name
		o.exists = f.exists(c.alice, func(ctx context.Context) error {
			_, err := f.envs.GetEnvironment(ctx, &scopev1.GetEnvironmentRequest{Name: name})
			return err
		})
		if w.call(o, c.alice, func(ctx context.Context) error {
			_, err := f.envs.CreateEnvironment(ctx, &scopev1.CreateEnvironmentRequest{Parent: "teams/acme", EnvironmentId: id, SecretNames: []string{"FIXED_A"}})
			return err
		}) == nil {
			w.made = append(w.made, o)
		}
	}
}

// checkClusterState checks what the load acknowledged against what the
// system holds now: every acknowledged agent, environment and run exists,
// and every secret written holds the value and version of its last
// acknowledged write, or those of a later write that failed in flight
// (and committed: its version is then that many higher). Values are read
// the only way there is, by resolving runs of the secrets and opening
// what they seal. It returns the number of secrets checked.
func checkClusterState(t *testing.T, f *auditFixture, priv hpke.PrivateKey, ws []*clusterWorker) int {
	t.Helper()
	alice := harness.WithToken(context.Background(), f.tm.alice)
	runner := harness.WithToken(context.Background(), f.runner)
	bad := 0
	errf := func(format string, args ...any) {
		t.Helper()
		if bad++; bad <= 20 {
			t.Errorf(format, args...)
		}
	}
	for _, w := range ws {
		for _, o := range w.made {
			if ok, err := o.exists(); err != nil || !ok {
				errf("%s %s was acknowledged; %s exists: %v (%v)", o.kind, o.reqID, o.resource, ok, err)
			}
		}
	}

	// What each secret may hold now: the last acknowledged write and the
	// writes after it (which failed, and may have committed).
	type expect struct {
		acked  *secretWrite // nil when no write was acknowledged
		after  []*secretWrite
		exists bool // whether it must exist
	}
	want := map[string]*expect{}
	for _, w := range ws {
		for id, writes := range w.writes {
			e := &expect{}
			for _, wr := range writes {
				if wr.op.code == codes.OK {
					e.acked, e.after, e.exists = wr, nil, true
					if want := int64(1); wr.op.kind == "secret.create" && wr.version != want {
						errf("%s %s: acknowledged version %d, want %d", wr.op.kind, wr.op.reqID, wr.version, want)
					}
				} else {
					e.after = append(e.after, wr)
				}
			}
			want[id] = e
		}
	}
	var names []string
	for id := range want {
		names = append(names, id)
	}
	slices.Sort(names)
	present := map[string]bool{}
	for _, id := range names {
		_, err := f.secrets.GetSecret(alice, &secretsv1.GetSecretRequest{Name: "teams/acme/secrets/" + id})
		switch status.Code(err) {
		case codes.OK:
			present[id] = true
		case codes.NotFound:
			if want[id].exists {
				errf("secret %s: not found, but %s %s was acknowledged", id, want[id].acked.op.kind, want[id].acked.op.reqID)
			}
		default:
			errf("get secret %s: %v", id, err)
		}
	}

	// Resolve the secrets that exist, 50 to a run.
	checked := 0
	var ids []string
	for _, id := range names {
		if present[id] {
			ids = append(ids, id)
		}
	}
	for chunk := range slices.Chunk(ids, 50) {
		st, err := f.runs.StartRun(harness.WithToken(context.Background(), f.cron), &scopev1.StartRunRequest{
			Parent: "teams/acme", Context: &scopev1.RunContext{Secrets: &scopev1.SecretNameList{Names: chunk}},
		})
		if err != nil {
			t.Fatalf("start a run of %d secrets: %v", len(chunk), err)
		}
		resp, err := f.runs.ResolveRun(runner, &scopev1.ResolveRunRequest{Parent: "teams/acme", Recipient: f.recipient, Ticket: st.GetTicket()})
		if err != nil {
			t.Fatalf("resolve %d secrets: %v", len(chunk), err)
		}
		plain, err := hpke.Open(priv, hpke.HKDFSHA256(), hpke.AES256GCM(), resp.GetSealed().GetInfo(), resp.GetSealed().GetCiphertext())
		if err != nil {
			t.Fatalf("open sealed values: %v", err)
		}
		var env scopev1.RunEnvironment
		if err := proto.Unmarshal(plain, &env); err != nil {
			t.Fatalf("sealed environment: %v", err)
		}
		values := map[string]string{}
		for _, v := range env.GetVars() {
			values[v.GetName()] = string(v.GetValue())
		}
		versions := map[string]int64{}
		for _, in := range resp.GetRun().GetInjected() {
			versions[in.GetSecretName()] = in.GetValueVersion()
		}
		for _, id := range chunk {
			checked++
			e := want[id]
			value, version := values[id], versions[id]
			// Which write the value is from: the acknowledged one, or the
			// k-th of those after it.
			from := slices.IndexFunc(e.after, func(wr *secretWrite) bool { return wr.value == value })
			switch {
			case e.acked != nil && value == e.acked.value:
				if version != e.acked.version {
					errf("secret %s holds the value of %s %s, at version %d; acknowledged at version %d",
						id, e.acked.op.kind, e.acked.op.reqID, version, e.acked.version)
				}
			case from >= 0:
				// A write that failed in flight committed; so may have some
				// before it, each one more version.
				lo, hi := int64(1), int64(from+1)
				if e.acked != nil {
					lo, hi = e.acked.version+1, e.acked.version+int64(from+1)
				}
				if version < lo || version > hi {
					errf("secret %s holds the value of %s %s (failed: %s) at version %d, want %d to %d",
						id, e.after[from].op.kind, e.after[from].op.reqID, e.after[from].op.code, version, lo, hi)
				}
			case e.acked != nil:
				errf("secret %s (version %d) holds neither the value of %s %s (acknowledged at version %d) nor of a write after it",
					id, version, e.acked.op.kind, e.acked.op.reqID, e.acked.version)
			default:
				errf("secret %s (version %d) holds the value of no write", id, version)
			}
		}
	}
	return checked
}

// checkNoCanary searches every file under dir for the prefix of the
// planted values, its hex and its base64 at each alignment (as
// checkNoPlanted does in the data directory), and returns how many files
// and bytes it read.
func checkNoCanary(t *testing.T, dir string) (files int, size int64) {
	t.Helper()
	needles := map[string][]byte{"value": []byte(canaryPrefix), "hex": []byte(hex.EncodeToString([]byte(canaryPrefix)))}
	for k := range 3 {
		in := append(make([]byte, k), canaryPrefix...)
		from, to := 0, 4*((k+len(canaryPrefix))/3)
		if k > 0 {
			from = 4
		}
		needles[fmt.Sprintf("base64@%d", k)] = []byte(base64.StdEncoding.EncodeToString(in)[from:to])
		needles[fmt.Sprintf("base64url@%d", k)] = []byte(base64.URLEncoding.EncodeToString(in)[from:to])
	}
	err := filepath.Walk(dir, func(path string, info os.FileInfo, err error) error {
		if err != nil || info.IsDir() {
			return err
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		files++
		size += int64(len(b))
		for what, n := range needles {
			if i := bytes.Index(b, n); i >= 0 {
				t.Errorf("%s holds a planted value (%s) at byte %d", path, what, i)
			}
		}
		return nil
	})
	if err != nil {
		t.Errorf("scan %s: %v", dir, err)
	}
	return files, size
}
