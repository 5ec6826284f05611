package grpcapi_test

import (
	"bytes"
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/ozsecrets/oz/lib/auditchain"
	auditv1 "github.com/ozsecrets/oz/proto/gen/oz/audit/v1"
	internalapiv1 "github.com/ozsecrets/oz/proto/gen/oz/internalapi/v1"
	"github.com/ozsecrets/oz/services/audit"
	"github.com/ozsecrets/oz/services/audit/audittest"
)

var base = time.Now().Add(-time.Hour).Truncate(time.Second).UTC()

// ev returns an event of the secretstore: the i-th, at base + i seconds.
func ev(team string, i int, action, resource string, details map[string]string) *auditv1.Event {
	return &auditv1.Event{
		Id:        fmt.Sprintf("secretstore-e1-%06d", i),
		Time:      timestamppb.New(base.Add(time.Duration(i) * time.Second)),
		Actor:     &auditv1.Actor{Kind: auditv1.ActorKind_ACTOR_KIND_USER, Name: "users/alice", Client: "cli"},
		Action:    action,
		Resource:  resource,
		Team:      team,
		Outcome:   auditv1.Outcome_OUTCOME_OK,
		RequestId: fmt.Sprintf("req-%d", i),
		Details:   details,
	}
}

func appendAs(t *testing.T, srv *audittest.Server, cert string, evs ...*auditv1.Event) *internalapiv1.AppendEventsResponse {
	t.Helper()
	resp, err := internalapiv1.NewAuditIngestServiceClient(srv.Dial(t, cert)).AppendEvents(context.Background(), &internalapiv1.AppendEventsRequest{Events: evs})
	if err != nil {
		t.Fatalf("AppendEvents: %v", err)
	}
	return resp
}

func wantCode(t *testing.T, err error, want codes.Code) {
	t.Helper()
	if got := status.Code(err); got != want {
		t.Errorf("got %v (%v), want %v", got, err, want)
	}
}

func TestAppendEvents(t *testing.T) {
	srv := audittest.Start(t, audittest.Options{})
	ok := ev("acme", 1, audit.ActionSecretCreate, "teams/acme/secrets/A", nil)
	resp := appendAs(t, srv, "secretstore", ok, ev("acme", 2, audit.ActionSecretCreate, "teams/acme/secrets/B", nil))
	if resp.GetAppended() != 2 || resp.GetDuplicates() != 0 {
		t.Errorf("got %v, want 2 appended", resp)
	}
	if resp := appendAs(t, srv, "secretstore", ok); resp.GetAppended() != 0 || resp.GetDuplicates() != 1 {
		t.Errorf("redelivery: got %v, want 1 duplicate", resp)
	}

	resolverEv := proto.Clone(ok).(*auditv1.Event)
	resolverEv.Id = "resolver-e1-1"
	if resp := appendAs(t, srv, "resolver", resolverEv); resp.GetAppended() != 1 {
		t.Errorf("resolver: got %v, want 1 appended", resp)
	}

	bad := ev("acme", 3, "NotAnAction", "", nil)
	tests := []struct {
		name   string
		cert   string
		token  string
		events []*auditv1.Event
		want   codes.Code
		field  string
	}{
		{"AnotherServicesID", "resolver", "", []*auditv1.Event{ev("acme", 9, "secret.create", "", nil)}, codes.PermissionDenied, ""},
		{"ResolversIDFromSecretstore", "secretstore", "", []*auditv1.Event{withID(ev("acme", 10, "secret.create", "", nil), "resolver-e1-10")}, codes.PermissionDenied, ""},
		// The gateway makes no change, so it emits no event: its
		// certificate appends nothing, not even under its own name.
		{"Gateway", "gateway", "", []*auditv1.Event{withID(ev("acme", 11, "secret.create", "", nil), "gateway-e1-11")}, codes.PermissionDenied, ""},
		{"NotAnIngestService", "audit", "", []*auditv1.Event{ok}, codes.PermissionDenied, ""},
		{"BearerToken", "gateway", "sysadmin", []*auditv1.Event{ok}, codes.PermissionDenied, ""},
		{"InvalidEvent", "secretstore", "", []*auditv1.Event{ev("acme", 4, "secret.create", "", nil), bad}, codes.InvalidArgument, "events[1].action"},
		{"NoTime", "secretstore", "", []*auditv1.Event{{Id: "secretstore-x", Action: "a.b", Outcome: auditv1.Outcome_OUTCOME_OK}}, codes.InvalidArgument, "events[0].time"},
		{"BadTeam", "secretstore", "", []*auditv1.Event{ev("Acme!", 5, "a.b", "", nil)}, codes.InvalidArgument, "events[0].team"},
		{"NUL", "secretstore", "", []*auditv1.Event{ev("acme", 6, "a.b", "", map[string]string{"k": "a\x00b"})}, codes.InvalidArgument, `events[0].details["k"]`},
		{"TooLarge", "secretstore", "", []*auditv1.Event{ev("acme", 7, "a.b", "", map[string]string{"k": strings.Repeat("x", audit.MaxEventBytes)})}, codes.InvalidArgument, "events[0]"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := context.Background()
			if tt.token != "" {
				ctx = audittest.As(ctx, tt.token)
			}
			_, err := internalapiv1.NewAuditIngestServiceClient(srv.Dial(t, tt.cert)).AppendEvents(ctx, &internalapiv1.AppendEventsRequest{Events: tt.events})
			wantCode(t, err, tt.want)
			if tt.field != "" {
				if got := fieldOf(err); got != tt.field {
					t.Errorf("field: got %q, want %q", got, tt.field)
				}
			}
		})
	}
	h, _ := srv.Store().Head(context.Background(), "acme")
	if h.Seq != 3 {
		t.Errorf("acme head: got seq %d, want 3 (nothing of a refused batch appended)", h.Seq)
	}
}

func withID(e *auditv1.Event, id string) *auditv1.Event {
	e.Id = id
	return e
}

func fieldOf(err error) string {
	for _, d := range status.Convert(err).Details() {
		if br, ok := d.(*errdetails.BadRequest); ok && len(br.GetFieldViolations()) > 0 {
			return br.GetFieldViolations()[0].GetField()
		}
	}
	return ""
}

func TestReadAuthorization(t *testing.T) {
	srv := audittest.Start(t, audittest.Options{})
	appendAs(t, srv, "secretstore", ev("acme", 1, "secret.create", "teams/acme/secrets/A", nil), ev("", 2, "user.create", "users/dave", nil))
	c := auditv1.NewAuditServiceClient(srv.Dial(t, "gateway"))
	tests := []struct {
		token, parent string
		want          codes.Code
	}{
		{"admin", "teams/acme", codes.OK},
		{"sysadmin", "teams/acme", codes.OK},
		{"sysadmin", "system", codes.OK},
		{"member", "teams/acme", codes.PermissionDenied},
		{"outsider", "teams/acme", codes.PermissionDenied},
		{"runner", "teams/acme", codes.PermissionDenied},
		{"admin", "system", codes.PermissionDenied},
		{"nobody", "teams/acme", codes.Unauthenticated},
		{"admin", "teams/Acme", codes.InvalidArgument},
		{"admin", "acme", codes.InvalidArgument},
	}
	for _, tt := range tests {
		t.Run(tt.token+"_"+strings.ReplaceAll(tt.parent, "/", "_"), func(t *testing.T) {
			ctx := audittest.As(context.Background(), tt.token)
			_, err := c.ListEvents(ctx, &auditv1.ListEventsRequest{Parent: tt.parent})
			wantCode(t, err, tt.want)
			_, err = c.VerifyChain(ctx, &auditv1.VerifyChainRequest{Parent: tt.parent})
			wantCode(t, err, tt.want)
			_, err = c.ExportEvents(ctx, &auditv1.ExportEventsRequest{Parent: tt.parent})
			wantCode(t, err, tt.want)
			if strings.HasPrefix(tt.parent, "teams/") {
				_, err = c.GetSecretUsage(ctx, &auditv1.GetSecretUsageRequest{Name: tt.parent + "/secrets/A/usage"})
				wantCode(t, err, tt.want)
			}
		})
	}

	// The denials are in the log: the member's on acme's chain, for acme's
	// admins to see.
	resp, err := c.ListEvents(audittest.As(context.Background(), "admin"), &auditv1.ListEventsRequest{Parent: "teams/acme", Action: audit.ActionRequestDenied, Actor: "bob"})
	if err != nil {
		t.Fatal(err)
	}
	if len(resp.GetEvents()) != 4 {
		t.Fatalf("got %d denials of bob, want 4 (one per method)", len(resp.GetEvents()))
	}
	d := resp.GetEvents()[0]
	if d.GetOutcome() != auditv1.Outcome_OUTCOME_DENIED || d.GetActor().GetKind() != auditv1.ActorKind_ACTOR_KIND_USER ||
		d.GetDetails()[audit.DetailMethod] != "/oz.audit.v1.AuditService/GetSecretUsage" || !strings.HasPrefix(d.GetId(), "audit-") {
		t.Errorf("denial event: got %v", d)
	}
	// The admin's own denial on the system chain is on the system chain.
	sys, err := c.ListEvents(audittest.As(context.Background(), "sysadmin"), &auditv1.ListEventsRequest{Parent: "system", Actor: "users/alice", Action: audit.ActionRequestDenied})
	if err != nil {
		t.Fatal(err)
	}
	if len(sys.GetEvents()) != 3 {
		t.Errorf("got %d denials of alice on the system chain, want 3", len(sys.GetEvents()))
	}
}

func TestListEventsFiltersAndPages(t *testing.T) {
	srv := audittest.Start(t, audittest.Options{})
	var evs []*auditv1.Event
	for i := 1; i <= 7; i++ {
		action := audit.ActionSecretCreate
		if i%2 == 0 {
			action = "agent.update"
		}
		evs = append(evs, ev("acme", i, action, fmt.Sprintf("teams/acme/x/%d", i), nil))
	}
	evs[2].RunId, evs[2].Outcome = "run-3", auditv1.Outcome_OUTCOME_FAILED
	appendAs(t, srv, "secretstore", evs...)
	c := auditv1.NewAuditServiceClient(srv.Dial(t, "gateway"))
	ctx := audittest.As(context.Background(), "admin")

	list := func(req *auditv1.ListEventsRequest) (all []string, pages int) {
		t.Helper()
		req.Parent = "teams/acme"
		for {
			resp, err := c.ListEvents(ctx, req)
			if err != nil {
				t.Fatalf("ListEvents: %v", err)
			}
			pages++
			for _, e := range resp.GetEvents() {
				all = append(all, e.GetId()[len(e.GetId())-1:])
			}
			if resp.GetNextPageToken() == "" {
				return all, pages
			}
			req.PageToken = resp.GetNextPageToken()
		}
	}
	tests := []struct {
		name      string
		req       *auditv1.ListEventsRequest
		want      string
		wantPages int
	}{
		{"All", &auditv1.ListEventsRequest{}, "7654321", 1},
		{"Pages", &auditv1.ListEventsRequest{PageSize: 3}, "7654321", 3},
		{"Action", &auditv1.ListEventsRequest{Action: "agent.update", PageSize: 2}, "642", 2},
		{"ActionPrefix", &auditv1.ListEventsRequest{Action: "secret.*"}, "7531", 1},
		{"Run", &auditv1.ListEventsRequest{RunId: "run-3"}, "3", 1},
		{"Outcome", &auditv1.ListEventsRequest{Outcome: auditv1.Outcome_OUTCOME_FAILED}, "3", 1},
		{"Resource", &auditv1.ListEventsRequest{Resource: "teams/acme/x/5"}, "5", 1},
		{"Time", &auditv1.ListEventsRequest{StartTime: timestamppb.New(base.Add(2 * time.Second)), EndTime: timestamppb.New(base.Add(5 * time.Second))}, "432", 1},
		{"Actor", &auditv1.ListEventsRequest{Actor: "users/alice", PageSize: 4}, "7654321", 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, pages := list(tt.req)
			if strings.Join(got, "") != tt.want || pages != tt.wantPages {
				t.Errorf("got %s in %d pages, want %s in %d", strings.Join(got, ""), pages, tt.want, tt.wantPages)
			}
		})
	}

	first, err := c.ListEvents(ctx, &auditv1.ListEventsRequest{Parent: "teams/acme", PageSize: 2})
	if err != nil {
		t.Fatal(err)
	}
	for name, req := range map[string]*auditv1.ListEventsRequest{
		"OtherFilter": {Parent: "teams/acme", Action: "agent.update", PageToken: first.GetNextPageToken()},
		"OtherChain":  {Parent: "teams/beta", PageToken: first.GetNextPageToken()},
		"Garbage":     {Parent: "teams/acme", PageToken: "x"},
		"BadRange":    {Parent: "teams/acme", StartTime: timestamppb.New(base), EndTime: timestamppb.New(base)},
		"BadAction":   {Parent: "teams/acme", Action: "secret*"},
		"NegSize":     {Parent: "teams/acme", PageSize: -1},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := c.ListEvents(audittest.As(context.Background(), "sysadmin"), req)
			wantCode(t, err, codes.InvalidArgument)
		})
	}
}

func exportAll(t *testing.T, c auditv1.AuditServiceClient, parent string, pageSize int32) (lines []byte, head *auditv1.ChainHead) {
	t.Helper()
	req := &auditv1.ExportEventsRequest{Parent: parent, PageSize: pageSize}
	for {
		resp, err := c.ExportEvents(audittest.As(context.Background(), "admin"), req)
		if err != nil {
			t.Fatalf("ExportEvents: %v", err)
		}
		for _, e := range resp.GetEvents() {
			b, err := auditchain.MarshalLine(e)
			if err != nil {
				t.Fatal(err)
			}
			lines = append(lines, b...)
		}
		head = resp.GetHead()
		if resp.GetNextPageToken() == "" {
			return lines, head
		}
		req.PageToken = resp.GetNextPageToken()
	}
}

func TestVerifyAndExport(t *testing.T) {
	srv := audittest.Start(t, audittest.Options{})
	for b := 0; b < 3; b++ {
		var evs []*auditv1.Event
		for i := 1; i <= 10; i++ {
			n := b*10 + i
			evs = append(evs, ev("acme", n, "secret.update", "teams/acme/secrets/S", map[string]string{"value_version": fmt.Sprint(n)}))
		}
		appendAs(t, srv, "secretstore", evs...)
	}
	appendAs(t, srv, "secretstore", ev("beta", 100, "secret.create", "teams/beta/secrets/S", nil))
	c := auditv1.NewAuditServiceClient(srv.Dial(t, "gateway"))
	ctx := audittest.As(context.Background(), "admin")

	v, err := c.VerifyChain(ctx, &auditv1.VerifyChainRequest{Parent: "teams/acme"})
	if err != nil {
		t.Fatal(err)
	}
	if !v.GetValid() || v.GetVerifiedEvents() != 30 || v.GetHead().GetSeq() != 30 || v.GetFirstBreak() != nil {
		t.Fatalf("VerifyChain: got %v, want 30 valid events", v)
	}

	lines, head := exportAll(t, c, "teams/acme", 7)
	rep, err := auditchain.VerifyExport(bytes.NewReader(lines))
	if err != nil {
		t.Fatal(err)
	}
	if rep.Break != nil || rep.Verified != 30 || rep.Chain != "teams/acme" {
		t.Fatalf("offline verify of the export: got %+v, want 30 valid events of teams/acme", rep)
	}
	if !bytes.Equal(rep.Head.Hash, v.GetHead().GetHash()) || head.GetSeq() != 30 || !bytes.Equal(head.GetHash(), v.GetHead().GetHash()) {
		t.Errorf("export head %v / %v, want VerifyChain's %v", rep.Head, head, v.GetHead())
	}

	// Tamper with the file: change one byte of event 12's stored content,
	// and remove the last event.
	srv.Stop()
	editDB(t, srv.DBPath, func(b *bolt.Bucket) {
		k := key("acme", 12)
		e := &auditv1.Event{}
		if err := proto.Unmarshal(b.Get(k), e); err != nil {
			t.Fatal(err)
		}
		e.Details["value_version"] = "1"
		nb, _ := proto.Marshal(e)
		if err := b.Put(k, nb); err != nil {
			t.Fatal(err)
		}
	})
	srv.Restart()
	c = auditv1.NewAuditServiceClient(srv.Dial(t, "gateway"))
	v, err = c.VerifyChain(ctx, &auditv1.VerifyChainRequest{Parent: "teams/acme"})
	if err != nil {
		t.Fatal(err)
	}
	if v.GetValid() || v.GetFirstBreak().GetSeq() != 12 || v.GetFirstBreak().GetEventId() != "secretstore-e1-000012" || v.GetVerifiedEvents() != 11 {
		t.Errorf("tampered event: got %v, want a break at seq 12", v)
	}
	lines, _ = exportAll(t, c, "teams/acme", 100)
	if rep, _ := auditchain.VerifyExport(bytes.NewReader(lines)); rep.Break == nil || rep.Break.Seq != 12 {
		t.Errorf("offline verify of the tampered export: got %+v, want a break at seq 12", rep)
	}
	// The other team's chain is untouched.
	if v, err := c.VerifyChain(audittest.As(context.Background(), "sysadmin"), &auditv1.VerifyChainRequest{Parent: "teams/beta"}); err != nil || !v.GetValid() {
		t.Errorf("beta: got %v, %v; want valid", v, err)
	}

	srv.Stop()
	editDB(t, srv.DBPath, func(b *bolt.Bucket) {
		if err := b.Delete(key("acme", 30)); err != nil {
			t.Fatal(err)
		}
	})
	srv.Restart()
	c = auditv1.NewAuditServiceClient(srv.Dial(t, "gateway"))
	v, err = c.VerifyChain(ctx, &auditv1.VerifyChainRequest{Parent: "teams/acme"})
	if err != nil || v.GetValid() || v.GetFirstBreak().GetSeq() != 12 {
		t.Errorf("tampered and truncated: got %v, %v; want the first break, at 12", v, err)
	}
}

func TestVerifyFindsTruncation(t *testing.T) {
	srv := audittest.Start(t, audittest.Options{})
	for i := 1; i <= 5; i++ {
		appendAs(t, srv, "secretstore", ev("acme", i, "secret.update", "teams/acme/secrets/S", nil))
	}
	srv.Stop()
	editDB(t, srv.DBPath, func(b *bolt.Bucket) {
		if err := b.Delete(key("acme", 5)); err != nil {
			t.Fatal(err)
		}
	})
	srv.Restart()
	c := auditv1.NewAuditServiceClient(srv.Dial(t, "gateway"))
	v, err := c.VerifyChain(audittest.As(context.Background(), "admin"), &auditv1.VerifyChainRequest{Parent: "teams/acme"})
	if err != nil {
		t.Fatal(err)
	}
	if v.GetValid() || v.GetFirstBreak().GetSeq() != 5 || !strings.Contains(v.GetFirstBreak().GetReason(), "removed from its end") {
		t.Errorf("got %v, want a break at seq 5: removed from the end", v)
	}
}

// key is the key of an event in the audit log (package kvstore's layout).
func key(team string, seq int64) []byte {
	return fmt.Appendf(nil, "events/teams/%s/%020d", team, seq)
}

// editDB edits the records of the audit log's bbolt file (boltkv's bucket).
func editDB(t *testing.T, path string, fn func(records *bolt.Bucket)) {
	t.Helper()
	db, err := bolt.Open(path, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if err := db.Update(func(tx *bolt.Tx) error { fn(tx.Bucket([]byte("records"))); return nil }); err != nil {
		t.Fatal(err)
	}
}

func TestGetSecretUsage(t *testing.T) {
	srv := audittest.Start(t, audittest.Options{})
	const x = "teams/acme/secrets/X"
	run := func(i int, id string, versions map[string]string, outcome auditv1.Outcome) *auditv1.Event {
		d := map[string]string{audit.DetailAgent: "default", audit.DetailTrigger: "cli", audit.DetailRunner: "runners/r1"}
		for k, v := range versions {
			d[k] = v
		}
		e := ev("acme", i, audit.ActionRunResolve, "teams/acme/runs/"+id, d)
		e.Id = fmt.Sprintf("resolver-e1-%06d", i)
		e.RunId, e.Outcome = id, outcome
		return e
	}
	ok := auditv1.Outcome_OUTCOME_OK
	injX := func(v string) map[string]string { return map[string]string{"injected.X": v} }
	appendAs(t, srv, "secretstore", ev("acme", 1, audit.ActionSecretCreate, x, map[string]string{"value_version": "1"}))
	appendAs(t, srv, "resolver", run(2, "run-a", injX("1"), ok))
	appendAs(t, srv, "secretstore", ev("acme", 3, audit.ActionSecretUpdate, x, map[string]string{"value_version": "2", "value_changed": "true"}))
	appendAs(t, srv, "resolver",
		run(4, "run-b", injX("2"), ok),
		run(5, "run-c", injX("1"), ok), // resolved with the old value
		run(6, "run-x", map[string]string{"injected.XY": "2", "injected_personal_count": "1"}, ok),
		run(7, "run-f", injX("2"), auditv1.Outcome_OUTCOME_FAILED),
	)
	appendAs(t, srv, "secretstore", ev("acme", 8, audit.ActionSecretUpdate, x, map[string]string{"value_version": "2"})) // description only
	appendAs(t, srv, "resolver", run(9, "run-d", injX("2"), ok))

	c := auditv1.NewAuditServiceClient(srv.Dial(t, "gateway"))
	usage := func(allVersions bool, maxRuns int32) *auditv1.SecretUsage {
		t.Helper()
		resp, err := c.GetSecretUsage(audittest.As(context.Background(), "admin"), &auditv1.GetSecretUsageRequest{Name: x + "/usage", AllVersions: allVersions, MaxRuns: maxRuns})
		if err != nil {
			t.Fatalf("GetSecretUsage: %v", err)
		}
		return resp.GetUsage()
	}
	runIDs := func(u *auditv1.SecretUsage) string {
		var out []string
		for _, r := range u.GetRuns() {
			out = append(out, r.GetRunId())
		}
		return strings.Join(out, ",")
	}
	u := usage(false, 0)
	if runIDs(u) != "run-d,run-b" || u.GetValueVersion() != 2 || !u.GetValueUpdateTime().AsTime().Equal(base.Add(3*time.Second)) || u.GetTotalRuns() != 2 {
		t.Errorf("since rotation: got %v, want run-d, run-b at version 2 set at +3s", u)
	}
	if r := u.GetRuns()[0]; r.GetAgent() != "default" || r.GetTrigger() != "cli" || r.GetRunner() != "runners/r1" || r.GetValueVersion() != 2 || r.GetEventId() != "resolver-e1-000009" {
		t.Errorf("run: got %v", r)
	}
	if u := usage(true, 0); runIDs(u) != "run-d,run-c,run-b,run-a" {
		t.Errorf("all versions: got %s, want run-d,run-c,run-b,run-a", runIDs(u))
	}
	if u := usage(true, 2); runIDs(u) != "run-d,run-c" || u.GetTotalRuns() != 4 {
		t.Errorf("max_runs 2: got %s of %d, want run-d,run-c of 4", runIDs(u), u.GetTotalRuns())
	}

	// Deleted and created again: versions restart, earlier runs are not of
	// this secret. The new create reaches the log after a run that used
	// it (the resolver shipped first).
	appendAs(t, srv, "secretstore", ev("acme", 10, audit.ActionSecretDelete, x, nil))
	appendAs(t, srv, "resolver", run(12, "run-g", injX("1"), ok))
	appendAs(t, srv, "secretstore", ev("acme", 11, audit.ActionSecretCreate, x, map[string]string{"value_version": "1"}))
	u = usage(false, 0)
	if runIDs(u) != "run-g" || u.GetValueVersion() != 1 || !u.GetCreateTime().AsTime().Equal(base.Add(11*time.Second)) {
		t.Errorf("recreated: got %v, want run-g at version 1", u)
	}
	if u := usage(true, 0); runIDs(u) != "run-g" {
		t.Errorf("recreated, all versions: got %s, want run-g", runIDs(u))
	}

	// Never created in the log: every run that received it.
	if u, err := c.GetSecretUsage(audittest.As(context.Background(), "admin"), &auditv1.GetSecretUsageRequest{Name: "teams/acme/secrets/XY/usage"}); err != nil || runIDs(u.GetUsage()) != "run-x" || u.GetUsage().GetValueVersion() != 0 {
		t.Errorf("unknown secret: got %v, %v; want run-x, version 0", u, err)
	}
	for _, name := range []string{"teams/acme/secrets/X", "users/alice/secrets/X/usage", "teams/acme/secrets/1X/usage", "teams/acme/secrets//usage"} {
		_, err := c.GetSecretUsage(audittest.As(context.Background(), "admin"), &auditv1.GetSecretUsageRequest{Name: name})
		wantCode(t, err, codes.InvalidArgument)
	}
}

// TestEventCarriesNoValue: no field of the audit API's messages could
// carry a secret value: bytes fields are hashes only, and nothing is named
// like a value.
func TestEventCarriesNoValue(t *testing.T) {
	allowedBytes := []string{"prev_hash", "hash"}
	seen := map[protoreflect.FullName]bool{}
	var walk func(md protoreflect.MessageDescriptor)
	walk = func(md protoreflect.MessageDescriptor) {
		if seen[md.FullName()] || !strings.HasPrefix(string(md.FullName()), "oz.audit.v1.") {
			return
		}
		if md.IsMapEntry() {
			// details: map<string, string>, text by type; ValidateEvent
			// and the emitters keep values out of it.
			return
		}
		seen[md.FullName()] = true
		for i := 0; i < md.Fields().Len(); i++ {
			f := md.Fields().Get(i)
			name := string(f.Name())
			if f.Kind() == protoreflect.BytesKind && !slices.Contains(allowedBytes, name) {
				t.Errorf("%s: a bytes field; only hashes may be bytes", f.FullName())
			}
			if strings.Contains(name, "value") && name != "value_version" && name != "value_update_time" {
				t.Errorf("%s: named like a value", f.FullName())
			}
			if f.Message() != nil {
				walk(f.Message())
			}
		}
	}
	files := []protoreflect.FileDescriptor{auditv1.File_oz_audit_v1_audit_proto}
	for _, fd := range files {
		for i := 0; i < fd.Messages().Len(); i++ {
			walk(fd.Messages().Get(i))
		}
	}
	if len(seen) < 10 {
		t.Errorf("walked %d messages, want every message of oz.audit.v1", len(seen))
	}
}
