// Command ozbench (`make bench`) measures the running system and prints each
// figure beside a baseline measured in the same run, as a ratio; it asserts
// nothing (these machines are noisy). Store-level benchmarks of each service
// are `go test -bench` benchmarks, run by `make bench` after this.
package main

import (
	"context"
	"crypto/hpke"
	"crypto/tls"
	"encoding/binary"
	"flag"
	"fmt"
	"io"
	"maps"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime/pprof"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	bolt "go.etcd.io/bbolt"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/protobuf/proto"

	"github.com/ozsecrets/oz/e2e/harness"
	"github.com/ozsecrets/oz/lib/etcdtest"
	"github.com/ozsecrets/oz/lib/flagenv"
	"github.com/ozsecrets/oz/lib/sealwire"
	scopev1 "github.com/ozsecrets/oz/proto/gen/oz/scope/v1"
	secretsv1 "github.com/ozsecrets/oz/proto/gen/oz/secrets/v1"
)

var (
	duration = flag.Duration("duration", 3*time.Second, "how long each throughput measurement runs")
	rounds   = flag.Int("rounds", 5, "interleaved rounds of the etcd section's measurements")
	samples  = flag.Int("samples", 2000, "calls per latency measurement")
	sections = flag.String("sections", "creates,latency,resolve,exec,scale,etcd", "which measurements to run, comma-separated")
	cpuDir   = flag.String("cpuprofile-dir", "", "write a CPU profile of each process of the system (gateway, resolver, secretstore, audit, ozdev) into `DIR`, as <binary>-<pid>.pprof, for go tool pprof; with -sections to profile one measurement")
	spansOn  = flag.Bool("spans", false, "trace every call (OTEL_TRACES_EXPORTER=console into each process's log) and print the median duration of each span by its path: where each call's wall-clock time went; with -sections to trace one measurement")
	etcdCPU  = flag.String("etcd-cpuprofile", "", "write a CPU profile of this process (the embedded etcd members and the clients) during ResolveRun on three etcd members to `FILE`")
)

// want reports whether the section name was asked for with -sections.
func want(name string) bool { return slices.Contains(strings.Split(*sections, ","), name) }

func main() {
	flag.Parse()
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "ozbench:", err)
		os.Exit(1)
	}
}

func run() error {
	work, err := os.MkdirTemp("", "ozbench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(work)
	bin := filepath.Join(work, "bin")
	fmt.Println("building…")
	if err := harness.Build(bin); err != nil {
		return err
	}
	if *cpuDir != "" {
		dir, err := filepath.Abs(*cpuDir)
		if err == nil {
			err = os.MkdirAll(dir, 0o755)
		}
		if err != nil {
			return err
		}
		// Every binary run through flagenv.Main profiles itself into it;
		// the system's processes inherit it through ozdev.
		os.Setenv(flagenv.CPUProfileDirEnv, dir)
		defer fmt.Printf("\nCPU profiles of each process (written as they stopped) in %s: e.g. go tool pprof -top %s/ozgateway-PID.pprof\n", dir, dir)
	}
	if *spansOn {
		os.Setenv("OTEL_TRACES_EXPORTER", "console") // the system's processes inherit it through ozdev (package tracing)
	}
	sys, err := harness.Start(bin, filepath.Join(work, "data"))
	if err != nil {
		return err
	}
	defer sys.Stop()
	if *spansOn {
		defer func() {
			// After the measurements, before the work directory goes, and
			// once the system has stopped: each process exports its last
			// spans as it stops (deferred calls run last first, so the
			// deferred Stop above would come after this).
			_ = sys.Stop()
			if err := printSpanBreakdown(filepath.Join(work, "data", "logs"), 20); err != nil {
				fmt.Fprintln(os.Stderr, "ozbench: spans:", err)
			}
		}()
	}

	token, err := setup(sys)
	if err != nil {
		return err
	}
	conn, err := sys.Dial()
	if err != nil {
		return err
	}
	defer conn.Close()
	secrets := secretsv1.NewSecretServiceClient(conn)
	ctx := harness.WithToken(context.Background(), token)

	if want("creates") {
		fmt.Println("\n== durable creates (ops/s) ==")
	}
	for _, clients := range []int{1, 64} {
		if !want("creates") {
			break
		}
		raw, err := rawBatch(filepath.Join(work, fmt.Sprintf("raw-%d.db", clients)), clients)
		if err != nil {
			return err
		}
		var seq atomic.Int64
		e2e := throughput(clients, func() error {
			n := seq.Add(1)
			_, err := secrets.CreateSecret(ctx, &secretsv1.CreateSecretRequest{
				Parent: "teams/bench", SecretId: fmt.Sprintf("S_%d_%d", clients, n), Value: []byte("benchmark-value-0123456789abcdef"),
			})
			return err
		})
		fmt.Printf("clients=%-3d raw bbolt Batch %9.0f   create via gateway (gRPC, TLS, auth) %9.0f   ratio %.2f\n",
			clients, raw, e2e, e2e/raw)
		if clients == 64 {
			svc, err := inProcess("./secretstore/kvstore/", "CreateBolt/audit=on/goroutines=64")
			if err != nil {
				return err
			}
			fmt.Printf("clients=64  secretstore service in process, with audit %9.0f   via gateway / in process %.2f (target ≥ 0.5)\n", svc, e2e/svc)
		}
	}

	// 1,000 secrets for the list, and one to get.
	for i := 0; i < 1000 && want("latency"); i++ {
		if _, err := secrets.CreateSecret(ctx, &secretsv1.CreateSecretRequest{
			Parent: "teams/list", SecretId: fmt.Sprintf("L_%04d", i), Value: []byte("v-0123456789"),
		}); err != nil {
			return err
		}
	}

	echo, stopEcho, err := echoServer(sys)
	if err != nil {
		return err
	}
	defer stopEcho()

	echoP50 := latency(func() error {
		_, err := echo.Check(context.Background(), &healthpb.HealthCheckRequest{})
		return err
	})
	if err := benchLatency(sys, conn, ctx, token, echoP50); err != nil {
		return err
	}
	if want("resolve") {
		if err := benchResolveRun(sys, conn, ctx, echo, echoP50, filepath.Join(work, "fsync.db")); err != nil {
			return err
		}
	}
	if want("exec") {
		if err := benchExecRelay(sys, conn, ctx, work); err != nil {
			return err
		}
	}
	if want("scale") {
		if err := benchScale(sys, conn); err != nil {
			return err
		}
	}
	if want("etcd") {
		return benchStores(bin, work)
	}
	return nil
}

// benchLatency measures the p50 of a Get and a List of 1,000 over gRPC and
// of a Get over REST, all through the gateway, beside the echo's.
func benchLatency(sys *harness.System, conn *grpc.ClientConn, ctx context.Context, token string, echoP50 time.Duration) error {
	secrets := secretsv1.NewSecretServiceClient(conn)
	if !want("latency") {
		return nil
	}
	fmt.Println("\n== latency p50 (µs) ==")
	// The echo is answered in this process; a health check that the
	// gateway answers itself crosses to another process and back, and
	// nothing more: the cost of a hop between processes on this machine,
	// the part of every call that no code of the system's is in.
	gwHealth := healthpb.NewHealthClient(conn)
	hopP50 := latency(func() error {
		_, err := gwHealth.Check(context.Background(), &healthpb.HealthCheckRequest{})
		return err
	})
	getP50 := latency(func() error {
		_, err := secrets.GetSecret(ctx, &secretsv1.GetSecretRequest{Name: "teams/list/secrets/L_0001"})
		return err
	})
	listP50 := latency(func() error {
		var page string
		n := 0
		for {
			resp, err := secrets.ListSecrets(ctx, &secretsv1.ListSecretsRequest{Parent: "teams/list", PageSize: 1000, PageToken: page})
			if err != nil {
				return err
			}
			n += len(resp.GetSecrets())
			if page = resp.GetNextPageToken(); page == "" {
				break
			}
		}
		if n != 1000 {
			return fmt.Errorf("listed %d, want 1000", n)
		}
		return nil
	})
	httpc, err := sys.HTTPClient()
	if err != nil {
		return err
	}
	restP50 := latency(func() error {
		req, _ := http.NewRequest("GET", "https://"+sys.Addr+"/v1/teams/list/secrets/L_0001", nil)
		req.Header.Set("Authorization", "Bearer "+token)
		resp, err := httpc.Do(req)
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		_, _ = io.Copy(io.Discard, resp.Body)
		if resp.StatusCode != 200 {
			return fmt.Errorf("REST get: %s", resp.Status)
		}
		return nil
	})
	fmt.Printf("bare gRPC echo (TLS, loopback)         %8.0f\n", us(echoP50))
	fmt.Printf("health check answered by the gateway    %8.0f   %.2f× echo (one hop to another process: no code of ours but the server's)\n", us(hopP50), float64(hopP50)/float64(echoP50))
	fmt.Printf("GetSecret via gateway, gRPC             %8.0f   %.2f× echo (target ≤ 5); %.2f× the gateway's health check (2 hops)\n", us(getP50), float64(getP50)/float64(echoP50), float64(getP50)/float64(hopP50))
	fmt.Printf("ListSecrets 1,000 via gateway, gRPC     %8.0f   %.2f× echo\n", us(listP50), float64(listP50)/float64(echoP50))
	fmt.Printf("GetSecret via gateway, REST             %8.0f   %.2f× gRPC Get (target ≤ 1.5)\n", us(restP50), float64(restP50)/float64(getP50))
	return nil
}

// benchExecRelay measures `oz exec` end to end — the real binary, a real
// runner token, a child printing 100 MB — relaying with 100 values masked
// against the same relay with none (--no-secrets), in the same run.
func benchExecRelay(sys *harness.System, conn *grpc.ClientConn, userCtx context.Context, work string) error {
	const values, size = 100, 100 << 20
	secrets := secretsv1.NewSecretServiceClient(conn)
	vals := make([]string, values)
	for i := range vals {
		vals[i] = fmt.Sprintf("relay-value-%03d-%s", i, strings.Repeat("x", 16+i%17))
		if _, err := secrets.CreateSecret(userCtx, &secretsv1.CreateSecretRequest{
			Parent: "teams/relay", SecretId: fmt.Sprintf("RELAY_%03d", i), Value: []byte(vals[i]),
		}); err != nil {
			return err
		}
	}
	adminCtx := harness.WithToken(context.Background(), sys.AdminToken)
	runner, err := scopev1.NewRunnerServiceClient(conn).CreateRunner(adminCtx, &scopev1.CreateRunnerRequest{
		RunnerId: "relay-runner", Teams: []string{"relay"},
	})
	if err != nil {
		return fmt.Errorf("create runner: %w", err)
	}
	integ, err := scopev1.NewIntegrationServiceClient(conn).CreateIntegration(userCtx, &scopev1.CreateIntegrationRequest{
		Parent: "teams/relay", IntegrationId: "relay-cron", Trigger: scopev1.Trigger_TRIGGER_SCHEDULE,
	})
	if err != nil {
		return fmt.Errorf("create integration: %w", err)
	}
	runs := scopev1.NewRunServiceClient(conn)
	cronCtx := harness.WithToken(context.Background(), integ.GetBearerToken())
	// Log-like lines, with a value every 64 KiB or so.
	corpus := filepath.Join(work, "corpus.txt")
	f, err := os.Create(corpus)
	if err != nil {
		return err
	}
	line := "2026-11-29T10:00:00Z INFO agent step completed: tool=shell exit=0 duration=12ms\n"
	written, next := 0, 0
	for written < size {
		n, _ := f.WriteString(line)
		written += n
		if written/(64<<10) > next {
			next++
			n, _ = f.WriteString("token " + vals[next%values] + " used\n")
			written += n
		}
	}
	if err := f.Close(); err != nil {
		return err
	}
	relay := func(flags ...string) (float64, error) {
		best := 0.0
		for range 2 {
			st, err := runs.StartRun(cronCtx, &scopev1.StartRunRequest{Parent: "teams/relay", Context: &scopev1.RunContext{}})
			if err != nil {
				return 0, fmt.Errorf("start run: %w", err)
			}
			args := append([]string{"exec", "--ticket-env", "OZ_TICKET"}, flags...)
			args = append(args, "--", "cat", corpus)
			cmd := exec.Command(filepath.Join(sys.BinDir, "oz"), args...)
			cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + work, "OZ_ADDR=" + sys.Addr,
				"OZ_CA_FILE=" + sys.CAFile, "OZ_TOKEN=" + runner.GetBearerToken(), "OZ_TICKET=" + st.GetTicket()}
			var out countingWriter
			cmd.Stdout = &out
			start := time.Now()
			if err := cmd.Run(); err != nil {
				return 0, fmt.Errorf("oz exec %v: %w", flags, err)
			}
			if out.n < size*9/10 { // masking shortens it a little
				return 0, fmt.Errorf("oz exec relayed %d bytes of %d", out.n, size)
			}
			best = max(best, float64(out.n)/(1<<20)/time.Since(start).Seconds())
		}
		return best, nil
	}
	plain, err := relay("--no-secrets")
	if err != nil {
		return err
	}
	masked, err := relay()
	if err != nil {
		return err
	}
	fmt.Println("\n== oz exec relay, 100 MB of child output (best of 2) ==")
	fmt.Printf("no values (--no-secrets)  %7.0f MB/s   %d values masked %7.0f MB/s   ratio %.2f (target ≥ 0.25)\n",
		plain, values, masked, masked/plain)
	return nil
}

// countingWriter counts bytes and keeps none.
type countingWriter struct{ n int }

func (w *countingWriter) Write(p []byte) (int, error) { w.n += len(p); return len(p), nil }

// benchResolveRun measures ResolveRun for a run of 10 secrets through the
// gateway, at 1 and 64 concurrent runners, beside the bare echo and one
// fsynced bbolt write measured in the same run.
func benchResolveRun(sys *harness.System, conn *grpc.ClientConn, userCtx context.Context, echo healthpb.HealthClient, echoP50 time.Duration, fsyncPath string) error {
	resolve, start, err := newResolve(sys, conn, userCtx, "runs", "bench-runner")
	if err != nil {
		return err
	}
	fsyncP50, err := fsyncWrite(fsyncPath)
	if err != nil {
		return err
	}
	startP50 := latency(start)
	cpuBefore := cpuByProcess()
	resolveP50 := latency(resolve)
	cpuAfter := cpuByProcess()
	floor := 2*echoP50 + fsyncP50
	fmt.Println("\n== a run of 10 secrets, via the gateway: StartRun (the scheduler) + ResolveRun (the runner), as \"ResolveRun\" below ==")
	fmt.Printf("one fsynced bbolt write p50 (µs)        %8.0f\n", us(fsyncP50))
	fmt.Printf("StartRun alone p50 (µs)                 %8.0f\n", us(startP50))
	fmt.Printf("ResolveRun p50 at 1 runner (µs)         %8.0f   %.2f× (2 echo + 1 write = %.0f µs; target ≤ 2); of which ResolveRun ≈ %.0f\n",
		us(resolveP50), float64(resolveP50)/float64(floor), us(floor), us(resolveP50-startP50))
	fmt.Printf("CPU per resolution at 1 runner (µs):    ")
	for _, name := range []string{"ozgateway", "ozresolverd", "ozsecretstored", "ozauditd"} {
		fmt.Printf(" %s %.0f", name, us(cpuAfter[name]-cpuBefore[name])/float64(*samples))
	}
	fmt.Println("   (before issue 16: 795, 1415, 910, 325; target ≤ 1/3 of those)")
	echoTput := throughput(64, func() error {
		_, err := echo.Check(context.Background(), &healthpb.HealthCheckRequest{})
		return err
	})
	resolveTput := throughput(64, resolve)
	pkg, err := inProcess("./resolver/runs/", "ResolveRun/audit=on/goroutines=64")
	if err != nil {
		return err
	}
	fmt.Printf("64 concurrent: echo %8.0f/s   ResolveRun %8.0f/s   ratio %.3f (target ≥ 0.06)\n",
		echoTput, resolveTput, resolveTput/echoTput)
	fmt.Printf("64 concurrent: resolver package bench, in process %8.0f/s   via gateway / in process %.2f (target ≥ 0.5)\n",
		pkg, resolveTput/pkg)
	return nil
}

// newResolve makes team's run of 10 secrets (the team exists and the
// user of userCtx is its admin), a runner of the team and the integration
// that starts its runs, checks once that a resolution's sealed values
// open, and returns a run of it: StartRun by the integration, then
// ResolveRun by the runner redeeming the ticket.
func newResolve(sys *harness.System, conn *grpc.ClientConn, userCtx context.Context, team, runnerID string) (resolve, start func() error, err error) {
	secrets := secretsv1.NewSecretServiceClient(conn)
	for i := 0; i < 10; i++ {
		if _, err := secrets.CreateSecret(userCtx, &secretsv1.CreateSecretRequest{
			Parent: "teams/" + team, SecretId: fmt.Sprintf("RUN_SECRET_%02d", i), Value: []byte("run-value-0123456789abcdef-0123456789"),
		}); err != nil {
			return nil, nil, err
		}
	}
	return newRun(sys, conn, userCtx, team, runnerID, &scopev1.RunContext{})
}

// newRun is newResolve of a team whose secrets exist, for runs of context
// rc: a run must be injected exactly 10 secrets.
func newRun(sys *harness.System, conn *grpc.ClientConn, userCtx context.Context, team, runnerID string, rc *scopev1.RunContext) (resolve, start func() error, err error) {
	adminCtx := harness.WithToken(context.Background(), sys.AdminToken)
	created, err := scopev1.NewRunnerServiceClient(conn).CreateRunner(adminCtx, &scopev1.CreateRunnerRequest{
		RunnerId: runnerID, Teams: []string{team},
	})
	if err != nil {
		return nil, nil, fmt.Errorf("create runner: %w", err)
	}
	runnerCtx := harness.WithToken(context.Background(), created.GetBearerToken())
	// The scheduler that starts the team's runs: a run is started by its
	// trigger (StartRun) and redeemed by the runner (ResolveRun).
	integ, err := scopev1.NewIntegrationServiceClient(conn).CreateIntegration(userCtx, &scopev1.CreateIntegrationRequest{
		Parent: "teams/" + team, IntegrationId: runnerID + "-cron", Trigger: scopev1.Trigger_TRIGGER_SCHEDULE,
	})
	if err != nil {
		return nil, nil, fmt.Errorf("create integration: %w", err)
	}
	cronCtx := harness.WithToken(context.Background(), integ.GetBearerToken())
	runs := scopev1.NewRunServiceClient(conn)
	kem := hpke.MLKEM768X25519()
	priv, err := kem.GenerateKey()
	if err != nil {
		return nil, nil, err
	}
	recipient := &scopev1.RecipientKey{KemId: uint32(kem.ID()), PublicKey: priv.PublicKey().Bytes()}
	startAndResolve := func() (*scopev1.ResolveRunResponse, error) {
		st, err := runs.StartRun(cronCtx, &scopev1.StartRunRequest{Parent: "teams/" + team, Context: rc})
		if err != nil {
			return nil, fmt.Errorf("start run: %w", err)
		}
		return runs.ResolveRun(runnerCtx, &scopev1.ResolveRunRequest{Parent: "teams/" + team, Recipient: recipient, Ticket: st.GetTicket()})
	}
	resolve = func() error {
		resp, err := startAndResolve()
		if err != nil {
			return err
		}
		if n := len(resp.GetRun().GetInjected()); n != 10 {
			return fmt.Errorf("run injected %d secrets, want 10", n)
		}
		return nil
	}
	// Check once that the values open, so the benchmark measures real work.
	resp, err := startAndResolve()
	if err != nil {
		return nil, nil, fmt.Errorf("resolve run: %w", err)
	}
	sealed := resp.GetSealed()
	plain, err := hpke.Open(priv, sealwire.KDF(), sealwire.AEAD(), sealed.GetInfo(), sealed.GetCiphertext())
	if err != nil {
		return nil, nil, fmt.Errorf("open sealed values: %w", err)
	}
	var env scopev1.RunEnvironment
	if err := proto.Unmarshal(plain, &env); err != nil || len(env.GetVars()) != 10 {
		return nil, nil, fmt.Errorf("sealed environment: %d vars, %v", len(env.GetVars()), err)
	}
	start = func() error {
		_, err := runs.StartRun(cronCtx, &scopev1.StartRunRequest{Parent: "teams/" + team, Context: rc})
		return err
	}
	return resolve, start, nil
}

// storeResult is what one kind of store measured, over every round.
type storeResult struct {
	creates, resolves []float64                // per second, at 64 clients, one per round
	cpu               map[string]time.Duration // per resolution, by process
	calls             map[string]float64       // per resolution, etcd's gRPC calls by method
}

// storeSystem is one running system measured by benchStores.
type storeSystem struct {
	name    string
	members int // of etcd; 0: bbolt
	create  func() error
	resolve func() error
	stop    func()
}

// benchStores measures secret creates and run resolutions (a run of 10
// secrets) at 64 clients on the services' etcd stores, on one embedded
// etcd member and on three, beside the same on bbolt files, each on a
// system of one replica of each service started the same way
// (harness.StartServices, harness.StartCluster), in the same run.
//
// The three systems run side by side and are measured in turn, -rounds
// times, each round in another order; the ratios are of the medians. This
// machine's speed drifts by tens of percent within a minute, and
// measuring each kind once, one after the other, let that drift decide
// the ratio.
func benchStores(bin, work string) error {
	fmt.Printf("\n== stores: etcd vs bbolt, 1 replica of each service, 64 clients, via the gateway (same run, %d interleaved rounds of %s, medians) ==\n", *rounds, *duration)
	kinds := []struct {
		name    string
		members int
	}{{"bbolt", 0}, {"etcd, 1 member", 1}, {"etcd, 3 members", 3}}
	var systems []*storeSystem
	defer func() {
		for _, sys := range systems {
			sys.stop()
		}
	}()
	for _, k := range kinds {
		sys, err := startStoreSystem(bin, filepath.Join(work, fmt.Sprintf("store-%d", k.members)), k.name, k.members)
		if err != nil {
			return fmt.Errorf("%s: %w", k.name, err)
		}
		systems = append(systems, sys)
	}
	results := make([]storeResult, len(systems))
	counts := make([]int64, len(systems))
	for i := range results {
		results[i] = storeResult{cpu: map[string]time.Duration{}, calls: map[string]float64{}}
	}
	for round := 0; round < *rounds; round++ {
		for j := range systems {
			i := (j + round) % len(systems)
			n, err := measureStore(systems[i], &results[i], round == 0)
			if err != nil {
				return fmt.Errorf("%s: %w", systems[i].name, err)
			}
			counts[i] += n
		}
	}
	for i := range results {
		for name, d := range results[i].cpu {
			results[i].cpu[name] = d / time.Duration(max(counts[i], 1))
		}
		for m, c := range results[i].calls {
			results[i].calls[m] = c / float64(max(counts[i], 1))
		}
	}

	self := filepath.Base(os.Args[0])
	if len(self) > 15 {
		self = self[:15] // what /proc/PID/stat holds
	}
	base := results[0]
	for i, sys := range systems {
		r := results[i]
		fmt.Printf("%-16s creates %7.0f/s (%.2f of bbolt)   ResolveRun %7.0f/s (%.2f of bbolt)   CPU per resolution (µs):",
			sys.name, median(r.creates), median(r.creates)/median(base.creates), median(r.resolves), median(r.resolves)/median(base.resolves))
		for _, name := range []string{"ozgateway", "ozresolverd", "ozsecretstored", "ozauditd"} {
			fmt.Printf(" %s %.0f", strings.TrimPrefix(name, "oz"), us(r.cpu[name]))
		}
		fmt.Printf(" etcd+clients(%s) %.0f\n", self, us(r.cpu[self]))
		if sys.members > 0 {
			var calls []string
			for _, m := range slices.Sorted(maps.Keys(r.calls)) {
				calls = append(calls, fmt.Sprintf("%s %.2f", m, r.calls[m]))
			}
			fmt.Printf("%-16s etcd calls per resolution (all members): %s\n", "", strings.Join(calls, ", "))
			var byRound []string
			for round := range r.resolves {
				byRound = append(byRound, fmt.Sprintf("%.2f", r.resolves[round]/base.resolves[round]))
			}
			fmt.Printf("%-16s ResolveRun / bbolt by round: %s\n", "", strings.Join(byRound, " "))
		}
		if sys.members == 3 {
			fmt.Printf("three-member etcd ResolveRun / bbolt: %.2f (target ≥ 0.50)\n", median(r.resolves)/median(base.resolves))
		}
	}
	return nil
}

// startStoreSystem starts a system of one replica of each service on a
// bbolt file each (members 0) or on an embedded etcd of members members,
// with a team of 10 secrets to resolve runs of.
func startStoreSystem(bin, dir, name string, members int) (_ *storeSystem, err error) {
	out := &storeSystem{name: name, members: members}
	var stops []func()
	out.stop = func() {
		for i := len(stops) - 1; i >= 0; i-- {
			stops[i]()
		}
	}
	defer func() {
		if err != nil {
			out.stop()
		}
	}()
	var sys *harness.System
	if members == 0 {
		svc, err := harness.StartServices(bin, filepath.Join(dir, "data"))
		if err != nil {
			return nil, err
		}
		stops = append(stops, func() { svc.Stop() })
		sys = svc.System
	} else {
		etcd, err := etcdtest.New(etcdtest.Config{Members: members, Dir: filepath.Join(dir, "etcd")})
		if err != nil {
			return nil, err
		}
		stops = append(stops, func() { etcd.Close() })
		cl, err := harness.StartCluster(bin, filepath.Join(dir, "data"), etcd.Endpoints(), 1)
		if err != nil {
			return nil, err
		}
		stops = append(stops, func() { cl.Stop() })
		sys = cl.System
	}
	token, err := setup(sys)
	if err != nil {
		return nil, err
	}
	conn, err := sys.Dial()
	if err != nil {
		return nil, err
	}
	stops = append(stops, func() { conn.Close() })
	ctx := harness.WithToken(context.Background(), token)
	secrets := secretsv1.NewSecretServiceClient(conn)
	var seq atomic.Int64
	out.create = func() error {
		_, err := secrets.CreateSecret(ctx, &secretsv1.CreateSecretRequest{
			Parent: "teams/bench", SecretId: fmt.Sprintf("S_%d", seq.Add(1)), Value: []byte("benchmark-value-0123456789abcdef"),
		})
		return err
	}
	if out.resolve, _, err = newResolve(sys, conn, ctx, "runs", "bench-runner"); err != nil {
		return nil, err
	}
	return out, nil
}

// measureStore measures one round of sys's creates and resolutions into
// r, adding the CPU and etcd calls of its resolutions, and returns how many
// resolutions there were. profile: write -etcd-cpuprofile, if asked for,
// during this round's resolutions on three members.
func measureStore(sys *storeSystem, r *storeResult, profile bool) (int64, error) {
	r.creates = append(r.creates, throughput(64, sys.create))
	if sys.members == 3 && profile && *etcdCPU != "" {
		f, err := os.Create(*etcdCPU)
		if err != nil {
			return 0, err
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return 0, err
		}
		defer pprof.StopCPUProfile()
	}
	var n atomic.Int64
	callsBefore := etcdCalls()
	before := cpuByProcess()
	r.resolves = append(r.resolves, throughput(64, func() error {
		err := sys.resolve()
		if err == nil {
			n.Add(1)
		}
		return err
	}))
	after := cpuByProcess()
	for m, c := range etcdCalls() {
		if d := c - callsBefore[m]; d > 0 {
			r.calls[m] += d
		}
	}
	for name, d := range after {
		r.cpu[name] += d - before[name]
	}
	return n.Load(), nil
}

// median returns the median of xs (the mean of the middle two when even).
func median(xs []float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	s := slices.Sorted(slices.Values(xs))
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

// etcdCalls counts the gRPC calls the embedded etcd members of this
// process have handled, by method ("Range", "Txn", …), from the metrics
// they register in Prometheus's default registry.
func etcdCalls() map[string]float64 {
	out := map[string]float64{}
	mfs, err := prometheus.DefaultGatherer.Gather()
	if err != nil {
		return out
	}
	for _, mf := range mfs {
		if mf.GetName() != "grpc_server_handled_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			var method, service string
			for _, l := range m.GetLabel() {
				switch l.GetName() {
				case "grpc_method":
					method = l.GetValue()
				case "grpc_service":
					service = l.GetValue()
				}
			}
			if strings.HasPrefix(service, "etcdserverpb.") {
				out[method] += m.GetCounter().GetValue()
			}
		}
	}
	return out
}

// fsyncWrite returns the median latency of one durable bbolt write (an
// Update, which fsyncs on commit), the storage floor of a resolution.
func fsyncWrite(path string) (time.Duration, error) {
	db, err := bolt.Open(path, 0o600, nil)
	if err != nil {
		return 0, err
	}
	defer db.Close()
	if err := db.Update(func(tx *bolt.Tx) error { _, err := tx.CreateBucketIfNotExists([]byte("b")); return err }); err != nil {
		return 0, err
	}
	var seq atomic.Int64
	val := make([]byte, 600)
	return latency(func() error {
		k := make([]byte, 8)
		binary.BigEndian.PutUint64(k, uint64(seq.Add(1)))
		return db.Update(func(tx *bolt.Tx) error { return tx.Bucket([]byte("b")).Put(k, val) })
	}), nil
}

// setup bootstraps a team "bench" (and "list") with an admin user and
// returns that user's token.
func setup(sys *harness.System) (string, error) {
	steps := [][]string{
		{"admin", "team", "create", "bench"},
		{"admin", "team", "create", "list"},
		{"admin", "user", "create", "benchy", "--team", "bench", "--role", "admin"},
		{"admin", "member", "add", "benchy", "--team", "list", "--role", "admin"},
		{"admin", "team", "create", "runs"},
		{"admin", "member", "add", "benchy", "--team", "runs", "--role", "admin"},
		{"admin", "team", "create", "relay"},
		{"admin", "member", "add", "benchy", "--team", "relay", "--role", "admin"},
	}
	for _, s := range steps {
		if res, err := sys.OZ(sys.AdminToken, nil, nil, s...); err != nil || res.Code != 0 {
			return "", fmt.Errorf("oz %v: %v %s", s, err, res.Stderr)
		}
	}
	res, err := sys.OZ(sys.AdminToken, nil, nil, "admin", "token", "create", "--user", "benchy")
	if err != nil || res.Code != 0 {
		return "", fmt.Errorf("token create: %v %s", err, res.Stderr)
	}
	return strings.TrimSpace(res.Stdout), nil
}

// rawBatch is the baseline for durable creates: bbolt Batch puts of a
// similar size, fsynced, from `clients` goroutines.
func rawBatch(path string, clients int) (float64, error) {
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: time.Second})
	if err != nil {
		return 0, err
	}
	defer db.Close()
	// bbolt's DB.Batch with a 1 ms delay: the plainest grouped write, the
	// baseline the services' stores (kv/boltkv's group commit) are compared with.
	db.MaxBatchDelay = time.Millisecond
	if err := db.Update(func(tx *bolt.Tx) error { _, err := tx.CreateBucketIfNotExists([]byte("b")); return err }); err != nil {
		return 0, err
	}
	val := make([]byte, 300)
	var seq atomic.Uint64
	return throughput(clients, func() error {
		k := make([]byte, 8)
		binary.BigEndian.PutUint64(k, seq.Add(1))
		return db.Batch(func(tx *bolt.Tx) error { return tx.Bucket([]byte("b")).Put(k, val) })
	}), nil
}

// throughput runs op from n goroutines for the configured duration and
// returns completed operations per second; it stops at the first error.
func throughput(n int, op func() error) float64 {
	var done atomic.Int64
	var failed atomic.Value
	stop := time.Now().Add(*duration)
	var wg sync.WaitGroup
	start := time.Now()
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for time.Now().Before(stop) {
				if err := op(); err != nil {
					failed.Store(err)
					return
				}
				done.Add(1)
			}
		}()
	}
	wg.Wait()
	if err := failed.Load(); err != nil {
		fmt.Fprintln(os.Stderr, "ozbench: operation failed:", err)
	}
	return float64(done.Load()) / time.Since(start).Seconds()
}

// latency returns the median of samples sequential calls, after a warm-up.
func latency(op func() error) time.Duration {
	for i := 0; i < 50; i++ {
		if err := op(); err != nil {
			fmt.Fprintln(os.Stderr, "ozbench: warm-up failed:", err)
			return 0
		}
	}
	d := make([]time.Duration, 0, *samples)
	for i := 0; i < *samples; i++ {
		t := time.Now()
		if err := op(); err != nil {
			fmt.Fprintln(os.Stderr, "ozbench:", err)
			return 0
		}
		d = append(d, time.Since(t))
	}
	slices.Sort(d)
	return d[len(d)/2]
}

func us(d time.Duration) float64 { return float64(d.Nanoseconds()) / 1000 }

// echoServer is the bare baseline: a gRPC server doing nothing but answer
// health checks, over TLS with the same kind of certificate, on loopback.
func echoServer(sys *harness.System) (healthpb.HealthClient, func(), error) {
	dir := filepath.Join(sys.DataDir, "pki")
	pair, err := tls.LoadX509KeyPair(filepath.Join(dir, "gateway.pem"), filepath.Join(dir, "gateway-key.pem"))
	if err != nil {
		return nil, nil, err
	}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, nil, err
	}
	srv := grpc.NewServer(grpc.Creds(credentials.NewTLS(&tls.Config{Certificates: []tls.Certificate{pair}})))
	healthpb.RegisterHealthServer(srv, health.NewServer())
	go srv.Serve(lis)
	pool, err := sys.CAPool()
	if err != nil {
		return nil, nil, err
	}
	conn, err := grpc.NewClient("passthrough:///"+lis.Addr().String(),
		grpc.WithTransportCredentials(credentials.NewTLS(&tls.Config{RootCAs: pool})))
	if err != nil {
		return nil, nil, err
	}
	return healthpb.NewHealthClient(conn), func() { conn.Close(); srv.Stop() }, nil
}

// cpuByProcess sums the CPU time (user and system) used so far by the
// processes of each command name, from /proc: where a resolution's time
// goes, by service.
func cpuByProcess() map[string]time.Duration {
	out := map[string]time.Duration{}
	dirs, _ := os.ReadDir("/proc")
	for _, d := range dirs {
		stat, err := os.ReadFile(filepath.Join("/proc", d.Name(), "stat"))
		if err != nil {
			continue
		}
		// pid (comm) state ppid … utime(14) stime(15), in clock ticks.
		open, closing := strings.IndexByte(string(stat), '('), strings.LastIndexByte(string(stat), ')')
		if open < 0 || closing < open {
			continue
		}
		comm := string(stat[open+1 : closing])
		f := strings.Fields(string(stat[closing+1:]))
		if len(f) < 13 {
			continue
		}
		var ut, st int64
		fmt.Sscan(f[11], &ut)
		fmt.Sscan(f[12], &st)
		out[comm] += time.Duration(ut+st) * 10 * time.Millisecond // USER_HZ is 100 on Linux
	}
	return out
}
