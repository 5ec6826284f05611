package audit

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/urfave/cli/v2"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/ozsecrets/oz/lib/auditchain"
	auditv1 "github.com/ozsecrets/oz/proto/gen/oz/audit/v1"
	scopev1 "github.com/ozsecrets/oz/proto/gen/oz/scope/v1"

	"github.com/ozsecrets/oz/cli/internal/client"
	"github.com/ozsecrets/oz/cli/internal/cmd/cmdutil"
	"github.com/ozsecrets/oz/cli/internal/config"
	"github.com/ozsecrets/oz/cli/internal/exitcode"
	"github.com/ozsecrets/oz/cli/internal/iostreams"
	"github.com/ozsecrets/oz/cli/internal/testutil/ozfake"
)

var testNow = time.Date(2026, 5, 20, 15, 0, 0, 0, time.UTC)

// fakeAudit is an AuditService whose methods call the func fields, and a
// DirectoryService whose caller is an admin of teams.
type fakeAudit struct {
	auditv1.UnimplementedAuditServiceServer
	scopev1.UnimplementedDirectoryServiceServer
	teams []string

	list   func(*auditv1.ListEventsRequest) (*auditv1.ListEventsResponse, error)
	verify func(*auditv1.VerifyChainRequest) (*auditv1.VerifyChainResponse, error)
	export func(*auditv1.ExportEventsRequest) (*auditv1.ExportEventsResponse, error)
	usage  func(*auditv1.GetSecretUsageRequest) (*auditv1.GetSecretUsageResponse, error)

	mu    sync.Mutex
	calls []proto.Message
}

func (f *fakeAudit) record(m proto.Message) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, proto.Clone(m))
}

func (f *fakeAudit) requests() []proto.Message {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]proto.Message(nil), f.calls...)
}

func (f *fakeAudit) ListEvents(_ context.Context, r *auditv1.ListEventsRequest) (*auditv1.ListEventsResponse, error) {
	f.record(r)
	return f.list(r)
}

func (f *fakeAudit) VerifyChain(_ context.Context, r *auditv1.VerifyChainRequest) (*auditv1.VerifyChainResponse, error) {
	f.record(r)
	return f.verify(r)
}

func (f *fakeAudit) ExportEvents(_ context.Context, r *auditv1.ExportEventsRequest) (*auditv1.ExportEventsResponse, error) {
	f.record(r)
	return f.export(r)
}

func (f *fakeAudit) GetSecretUsage(_ context.Context, r *auditv1.GetSecretUsageRequest) (*auditv1.GetSecretUsageResponse, error) {
	f.record(r)
	return f.usage(r)
}

func (f *fakeAudit) GetCaller(context.Context, *scopev1.GetCallerRequest) (*scopev1.GetCallerResponse, error) {
	p := &scopev1.Principal{Kind: scopev1.PrincipalKind_PRINCIPAL_KIND_USER, Name: "users/alice"}
	for _, t := range f.teams {
		p.Teams = append(p.Teams, &scopev1.TeamRole{Team: t, Role: scopev1.Role_ROLE_ADMIN})
	}
	return &scopev1.GetCallerResponse{Principal: p}, nil
}

// serve runs f behind TLS on loopback and returns deps that reach it.
func serve(t *testing.T, f *fakeAudit) (Deps, *bytes.Buffer, *bytes.Buffer) {
	t.Helper()
	settings := start(t, f)
	ios, _, out, errOut := iostreams.Test()
	return Deps{
		IO:      ios,
		Connect: func(context.Context) (*client.Conn, error) { return client.Dial(settings) },
		Now:     func() time.Time { return testNow },
	}, out, errOut
}

// start runs f behind TLS on loopback and returns the settings that reach
// it.
func start(t *testing.T, f *fakeAudit) config.Settings {
	t.Helper()
	cert, caPEM := ozfake.SelfSigned(t)
	caFile := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(caFile, caPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	gs := grpc.NewServer(grpc.Creds(credentials.NewTLS(&tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12})))
	auditv1.RegisterAuditServiceServer(gs, f)
	scopev1.RegisterDirectoryServiceServer(gs, f)
	go func() { _ = gs.Serve(lis) }()
	t.Cleanup(gs.Stop)
	return config.Settings{Addr: lis.Addr().String(), CAFile: caFile, Token: "oz_test"}
}

// buildChain returns n linked events of team acme.
func buildChain(n int) []*auditv1.Event {
	var h auditchain.Head
	out := make([]*auditv1.Event, n)
	for i := range out {
		out[i] = &auditv1.Event{
			Id: fmt.Sprintf("secretstore-e-%d", i+1), Time: timestamppb.New(testNow.Add(time.Duration(i-n) * time.Minute)),
			Actor:  &auditv1.Actor{Kind: auditv1.ActorKind_ACTOR_KIND_USER, Name: "users/alice", Client: "cli"},
			Action: "secret.update", Resource: "teams/acme/secrets/API_KEY", Team: "acme",
			Outcome: auditv1.Outcome_OUTCOME_OK, Details: map[string]string{"value_version": fmt.Sprint(i + 1)},
			AppendTime: timestamppb.New(testNow),
		}
		h = h.Link(out[i])
	}
	return out
}

// exportPages serves evs two per page.
func exportPages(evs []*auditv1.Event) func(*auditv1.ExportEventsRequest) (*auditv1.ExportEventsResponse, error) {
	return func(r *auditv1.ExportEventsRequest) (*auditv1.ExportEventsResponse, error) {
		start := 0
		if r.GetPageToken() != "" {
			fmt.Sscan(r.GetPageToken(), &start)
		}
		end := min(start+2, len(evs))
		resp := &auditv1.ExportEventsResponse{Events: evs[start:end], Head: &auditv1.ChainHead{Chain: r.GetParent(), Seq: int64(len(evs))}}
		if end < len(evs) {
			resp.NextPageToken = fmt.Sprint(end)
		}
		return resp, nil
	}
}

func wantExit(t *testing.T, err error, code int) {
	t.Helper()
	lines, got := exitcode.Describe(err)
	if got != code {
		t.Errorf("got exit code %d (%q), want %d", got, lines, code)
	}
}

func TestParseWhen(t *testing.T) {
	loc := time.FixedZone("test", 2*3600)
	now := time.Date(2026, 5, 20, 15, 0, 0, 0, loc)
	tests := []struct {
		in   string
		want time.Time
	}{
		{"24h", now.Add(-24 * time.Hour)},
		{"90m", now.Add(-90 * time.Minute)},
		{"7d", now.Add(-7 * 24 * time.Hour)},
		{"2w", now.Add(-14 * 24 * time.Hour)},
		{"2026-05-04", time.Date(2026, 5, 4, 0, 0, 0, 0, loc)},
		{"2026-05-04T10:30", time.Date(2026, 5, 4, 10, 30, 0, 0, loc)},
		{"2026-05-04T10:30:00Z", time.Date(2026, 5, 4, 10, 30, 0, 0, time.UTC)},
	}
	for _, tt := range tests {
		got, err := ParseWhen(tt.in, now)
		if err != nil || !got.Equal(tt.want) {
			t.Errorf("ParseWhen(%q): got %v, %v; want %v", tt.in, got, err, tt.want)
		}
	}
	for _, bad := range []string{"", "yesterday", "-5m", "5x", "d"} {
		if _, err := ParseWhen(bad, now); err == nil {
			t.Errorf("ParseWhen(%q): got nil, want an error", bad)
		}
	}
}

func TestList(t *testing.T) {
	evs := buildChain(5)
	f := &fakeAudit{teams: []string{"acme"}, list: func(r *auditv1.ListEventsRequest) (*auditv1.ListEventsResponse, error) {
		// Newest first, two per page.
		start := 0
		if r.GetPageToken() != "" {
			fmt.Sscan(r.GetPageToken(), &start)
		}
		var page []*auditv1.Event
		for i := len(evs) - 1 - start; i >= 0 && len(page) < min(2, int(r.GetPageSize())); i-- {
			page = append(page, evs[i])
		}
		resp := &auditv1.ListEventsResponse{Events: page}
		if start+len(page) < len(evs) {
			resp.NextPageToken = fmt.Sprint(start + len(page))
		}
		return resp, nil
	}}
	d, out, _ := serve(t, f)
	err := runList(context.Background(), &ListOptions{Deps: d, Since: "24h", Action: "secret.*", Actor: "alice", Outcome: "ok", Limit: 3})
	if err != nil {
		t.Fatal(err)
	}
	want := strings.Join([]string{
		"TIME                  ACTOR              ACTION         RESOURCE                    OUTCOME",
		"2026-05-20T14:59:00Z  users/alice (cli)  secret.update  teams/acme/secrets/API_KEY  ok",
		"2026-05-20T14:58:00Z  users/alice (cli)  secret.update  teams/acme/secrets/API_KEY  ok",
		"2026-05-20T14:57:00Z  users/alice (cli)  secret.update  teams/acme/secrets/API_KEY  ok",
	}, "\n") + "\n"
	if out.String() != want {
		t.Errorf("got\n%s\nwant\n%s", out, want)
	}
	var lists []*auditv1.ListEventsRequest
	for _, m := range f.requests() {
		if r, ok := m.(*auditv1.ListEventsRequest); ok {
			lists = append(lists, r)
		}
	}
	if len(lists) != 2 {
		t.Fatalf("got %d ListEvents calls, want 2 (3 of 5 events, 2 per page)", len(lists))
	}
	first := lists[0]
	if first.GetParent() != "teams/acme" || first.GetAction() != "secret.*" || first.GetActor() != "alice" ||
		first.GetOutcome() != auditv1.Outcome_OUTCOME_OK || !first.GetStartTime().AsTime().Equal(testNow.Add(-24*time.Hour)) || first.GetPageSize() != 3 {
		t.Errorf("first request: got %v", first)
	}
	if lists[1].GetPageSize() != 1 || lists[1].GetPageToken() != "2" {
		t.Errorf("second request: got %v, want the rest of the limit with the token", lists[1])
	}

	// JSON: every event, with the proto field names.
	d, out, _ = serve(t, f)
	d.System = true
	if err := runList(context.Background(), &ListOptions{Deps: d, Output: cmdutil.FormatJSON}); err != nil {
		t.Fatal(err)
	}
	var items []map[string]any
	if err := json.Unmarshal(out.Bytes(), &items); err != nil {
		t.Fatalf("not JSON: %v\n%s", err, out)
	}
	if len(items) != 5 || items[0]["id"] != "secretstore-e-5" || items[0]["request_id"] != nil && items[0]["request_id"] != "" {
		t.Errorf("got %d items, first %v", len(items), items[0])
	}
	if _, ok := items[0]["prev_hash"]; !ok {
		t.Errorf("want prev_hash in %v", items[0])
	}
	last := f.requests()[len(f.requests())-1].(*auditv1.ListEventsRequest)
	if last.GetParent() != "system" {
		t.Errorf("--system: got parent %q, want system", last.GetParent())
	}

	for name, opts := range map[string]ListOptions{
		"BadOutcome": {Outcome: "maybe"},
		"BadSince":   {Since: "whenever"},
		"BadLimit":   {Limit: -1},
	} {
		t.Run(name, func(t *testing.T) {
			d, _, _ := serve(t, f)
			opts.Deps = d
			wantExit(t, runList(context.Background(), &opts), exitcode.Usage)
		})
	}
}

func TestExportThenVerifyOffline(t *testing.T) {
	evs := buildChain(5)
	d, _, _ := serve(t, &fakeAudit{teams: []string{"acme"}, export: exportPages(evs)})
	file := filepath.Join(t.TempDir(), "export.jsonl")
	if err := runExport(context.Background(), &ExportOptions{Deps: d, OutputFile: file}); err != nil {
		t.Fatalf("runExport: %v", err)
	}
	fi, err := os.Stat(file)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("export mode: got %v, want 0600", fi.Mode().Perm())
	}
	data, _ := os.ReadFile(file)
	if n := bytes.Count(data, []byte("\n")); n != 5 {
		t.Errorf("got %d lines, want 5", n)
	}
	if left, _ := filepath.Glob(filepath.Join(filepath.Dir(file), ".export.jsonl.*")); len(left) != 0 {
		t.Errorf("temporary files left: %v", left)
	}

	// Offline: no server involved.
	offline := func(t *testing.T, file string, stdin []byte, format cmdutil.Format) (string, error) {
		ios, in, out, _ := iostreams.Test()
		in.Write(stdin)
		err := runVerify(context.Background(), &VerifyOptions{
			Deps: Deps{IO: ios, Now: stepClock(2 * time.Second), Connect: func(context.Context) (*client.Conn, error) {
				t.Fatal("offline verify dialed the server")
				return nil, nil
			}},
			File: file, Output: format,
		})
		return out.String(), err
	}
	got, err := offline(t, file, nil, cmdutil.FormatTable)
	if err != nil {
		t.Fatalf("verify --file: %v", err)
	}
	wantHead := hex.EncodeToString(evs[4].GetHash())
	if want := "teams/acme: 5 events verified\nhead: seq 5 hash " + wantHead + "\ntime: 2.00s (3 events/s)\n"; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
	if got, err := offline(t, "-", data, cmdutil.FormatJSON); err != nil || !strings.Contains(got, `"valid": true`) {
		t.Errorf("verify --file - --output json: got %s, %v", got, err)
	}

	// A changed byte, a removed line, a swapped pair: each found and placed.
	lines := strings.SplitAfter(string(data), "\n")
	for name, tc := range map[string]struct {
		edit    func([]string) []string
		wantSeq string
	}{
		"ChangedByte": {func(l []string) []string { l[2] = strings.Replace(l[2], "alice", "alicf", 1); return l }, "seq 3 (event secretstore-e-3)"},
		"RemovedLine": {func(l []string) []string { return append(l[:1:1], l[2:]...) }, "seq 2 (event secretstore-e-3)"},
		"SwappedPair": {func(l []string) []string { l[3], l[4] = l[4], l[3]; return l }, "seq 4 (event secretstore-e-5)"},
	} {
		t.Run(name, func(t *testing.T) {
			tampered := filepath.Join(t.TempDir(), "t.jsonl")
			if err := os.WriteFile(tampered, []byte(strings.Join(tc.edit(append([]string(nil), lines...)), "")), 0o600); err != nil {
				t.Fatal(err)
			}
			out, err := offline(t, tampered, nil, cmdutil.FormatTable)
			wantExit(t, err, exitcode.Tampered)
			if err == nil || !strings.Contains(err.Error(), "broken at "+tc.wantSeq) || !strings.Contains(out, "BROKEN") {
				t.Errorf("got %q, %v; want a break at %s", out, err, tc.wantSeq)
			}
		})
	}
	_, err = offline(t, filepath.Join(t.TempDir(), "missing"), nil, cmdutil.FormatTable)
	wantExit(t, err, exitcode.Usage)
}

func TestExportBrokenChain(t *testing.T) {
	evs := buildChain(4)
	evs[1].Action = "secret.delete" // changed after it was hashed
	d, out, _ := serve(t, &fakeAudit{teams: []string{"acme"}, export: exportPages(evs)})
	err := runExport(context.Background(), &ExportOptions{Deps: d})
	wantExit(t, err, exitcode.Error)
	if err == nil || !strings.Contains(err.Error(), "seq 2") {
		t.Errorf("got %v, want the break at seq 2", err)
	}
	if n := strings.Count(out.String(), "\n"); n != 4 {
		t.Errorf("got %d lines on standard output, want all 4 (the export is the evidence)", n)
	}
}

func TestVerifyOnServer(t *testing.T) {
	f := &fakeAudit{teams: []string{"acme", "beta"}, verify: func(r *auditv1.VerifyChainRequest) (*auditv1.VerifyChainResponse, error) {
		if r.GetParent() == "teams/beta" {
			return &auditv1.VerifyChainResponse{Valid: false, VerifiedEvents: 6, Head: &auditv1.ChainHead{Seq: 9, Hash: []byte{9}},
				FirstBreak: &auditv1.ChainBreak{Seq: 7, EventId: "resolver-x-7", Reason: "hash does not match the event's content: the event was changed"}}, nil
		}
		return &auditv1.VerifyChainResponse{Valid: true, VerifiedEvents: 9, Head: &auditv1.ChainHead{Seq: 9, Hash: []byte{0xab, 0xcd}}}, nil
	}}
	d, out, _ := serve(t, f)
	d.Team, d.Now = "acme", stepClock(1500*time.Millisecond)
	if err := runVerify(context.Background(), &VerifyOptions{Deps: d}); err != nil {
		t.Fatal(err)
	}
	if want := "teams/acme: 9 events verified\nhead: seq 9 hash abcd\ntime: 1.50s (6 events/s)\n"; out.String() != want {
		t.Errorf("got %q, want %q", out, want)
	}
	d, _, _ = serve(t, f)
	d.Team = "beta"
	err := runVerify(context.Background(), &VerifyOptions{Deps: d})
	wantExit(t, err, exitcode.Tampered)
	if err == nil || !strings.Contains(err.Error(), "teams/beta is broken at seq 7 (event resolver-x-7): hash does not match") {
		t.Errorf("got %v", err)
	}
	// Several teams and none chosen: a usage error that says how to choose.
	d, _, _ = serve(t, f)
	wantExit(t, runVerify(context.Background(), &VerifyOptions{Deps: d}), exitcode.Usage)
}

func TestUsage(t *testing.T) {
	f := &fakeAudit{teams: []string{"acme"}, usage: func(r *auditv1.GetSecretUsageRequest) (*auditv1.GetSecretUsageResponse, error) {
		if !strings.HasSuffix(r.GetName(), "/API_KEY/usage") {
			return nil, status.Error(codes.InvalidArgument, "name")
		}
		return &auditv1.GetSecretUsageResponse{Usage: &auditv1.SecretUsage{
			Name: r.GetName(), ValueVersion: 3, ValueUpdateTime: timestamppb.New(testNow.Add(-time.Hour)), TotalRuns: 2,
			Runs: []*auditv1.SecretUse{
				{RunId: "run-2", Time: timestamppb.New(testNow.Add(-time.Minute)), ValueVersion: 3, Agent: "default", Trigger: "cli", Runner: "runners/r1", EventId: "resolver-e-2"},
				{RunId: "run-1", Time: timestamppb.New(testNow.Add(-30 * time.Minute)), ValueVersion: 3, Trigger: "schedule", EventId: "resolver-e-1"},
			},
		}}, nil
	}}
	d, out, _ := serve(t, f)
	d.IO.StdoutTTY = true // a person: local times (a script gets RFC 3339, as in TestList)
	if err := runUsage(context.Background(), &UsageOptions{Deps: d, Secret: "API_KEY", AllVersions: true, Limit: 10}); err != nil {
		t.Fatal(err)
	}
	want := strings.Join([]string{
		"RUN    TIME                 VERSION  AGENT    TRIGGER   RUNNER",
		"run-2  2026-05-20 14:59:00  3        default  cli       runners/r1",
		"run-1  2026-05-20 14:30:00  3        -        schedule  -",
	}, "\n") + "\n"
	if out.String() != want {
		t.Errorf("got\n%s\nwant\n%s", out, want)
	}
	r := f.requests()[0].(*auditv1.GetSecretUsageRequest)
	if r.GetName() != "teams/acme/secrets/API_KEY/usage" || !r.GetAllVersions() || r.GetMaxRuns() != 10 {
		t.Errorf("request: got %v", r)
	}
	d, out, _ = serve(t, f)
	if err := runUsage(context.Background(), &UsageOptions{Deps: d, Secret: "API_KEY", Output: cmdutil.FormatJSON}); err != nil {
		t.Fatal(err)
	}
	var got usageJSON
	if err := json.Unmarshal(out.Bytes(), &got); err != nil || got.Team != "acme" || got.ValueVersion != 3 || len(got.Runs) != 2 || got.Runs[0].RunID != "run-2" {
		t.Errorf("JSON: got %+v, %v", got, err)
	}
	d, _, _ = serve(t, f)
	wantExit(t, runUsage(context.Background(), &UsageOptions{Deps: d, Secret: "a/b"}), exitcode.Usage)
}

// TestCommandLine runs the commands as oz would: flags to options.
func TestCommandLine(t *testing.T) {
	f := &fakeAudit{teams: []string{"acme", "beta"},
		list: func(*auditv1.ListEventsRequest) (*auditv1.ListEventsResponse, error) {
			return &auditv1.ListEventsResponse{}, nil
		},
		verify: func(*auditv1.VerifyChainRequest) (*auditv1.VerifyChainResponse, error) {
			return &auditv1.VerifyChainResponse{Valid: true, Head: &auditv1.ChainHead{}}, nil
		},
	}
	settings := start(t, f)
	env := map[string]string{
		config.EnvAddr: settings.Addr, config.EnvCAFile: settings.CAFile, config.EnvToken: settings.Token,
		config.EnvConfig: filepath.Join(t.TempDir(), "none.toml"), "OZ_TEAM": "beta",
	}
	run := func(args ...string) error {
		ios, _, _, _ := iostreams.Test()
		fac := &cmdutil.Factory{IO: ios, Now: func() time.Time { return testNow }, Getenv: func(k string) string { return env[k] }, Dial: client.Dial}
		app := &cli.App{Name: "oz", Commands: []*cli.Command{NewCmd(fac)}, ExitErrHandler: func(*cli.Context, error) {}}
		return app.RunContext(context.Background(), append([]string{"oz", "audit"}, args...))
	}
	if err := run("list", "--team", "acme", "--action", "secret.*", "--run", "r1", "--until", "2026-05-20", "--limit", "0"); err != nil {
		t.Fatal(err)
	}
	r := f.requests()[len(f.requests())-1].(*auditv1.ListEventsRequest)
	if r.GetParent() != "teams/acme" || r.GetAction() != "secret.*" || r.GetRunId() != "r1" || r.GetPageSize() != 1000 ||
		!r.GetEndTime().AsTime().Equal(time.Date(2026, 5, 20, 0, 0, 0, 0, time.UTC)) {
		t.Errorf("list: got %v", r)
	}
	if err := run("verify"); err != nil { // OZ_TEAM
		t.Fatal(err)
	}
	if r := f.requests()[len(f.requests())-1].(*auditv1.VerifyChainRequest); r.GetParent() != "teams/beta" {
		t.Errorf("verify with OZ_TEAM: got parent %q, want teams/beta", r.GetParent())
	}
	if err := run("verify", "--system"); err != nil {
		t.Fatal(err)
	}
	if r := f.requests()[len(f.requests())-1].(*auditv1.VerifyChainRequest); r.GetParent() != "system" {
		t.Errorf("verify --system: got parent %q, want system", r.GetParent())
	}
	wantExit(t, run("list", "--system", "--team", "acme"), exitcode.Usage)
	wantExit(t, run("list", "extra"), exitcode.Usage)
	wantExit(t, run("list", "--output", "yaml"), exitcode.Usage)
	wantExit(t, run("usage"), exitcode.Usage)
}
