package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/ozsecrets/oz/e2e/harness"
	auditv1 "github.com/ozsecrets/oz/proto/gen/oz/audit/v1"
	internalapiv1 "github.com/ozsecrets/oz/proto/gen/oz/internalapi/v1"
)

var auditEvents = flag.String("audit-events", "100000,1000000", "chain lengths of the scale section's `oz audit verify` rows, comma-separated, ascending")

// auditBatch is the most events one AppendEvents takes (audit.MaxBatch).
const auditBatch = 1000

// auditTeam is the team whose chain the rows verify; no other section
// writes to it.
const auditTeam = "auditscale"

// auditRow is one measured operation over the chain.
type auditRow struct {
	what    string
	events  int64
	elapsed time.Duration
}

// benchAuditScale measures `oz audit verify` (the real CLI, on the
// server, through the gateway) of one team's chain at each length of
// -audit-events. A chain of 1,000,000 events cannot be made through the
// system in a bench's time (every secret change is one event), so ozbench
// delivers the events itself, as the secretstore does from its outbox: it
// presents the secretstore's certificate (the data directory's pki/) to
// the audit service's AuditIngestService and appends valid events in
// batches of the most a call takes. At the first length, it also times an
// export and the offline `oz audit verify --file` of it.
func benchAuditScale(sys *harness.System) error {
	sizes, err := parseSizes(*auditEvents)
	if err != nil {
		return err
	}
	fmt.Printf("\n== scale: `oz audit verify` of one team's chain, on the server via the gateway (events appended by ozbench as the secretstore, %d a call) ==\n", auditBatch)
	conn, err := sys.DialService("audit", "secretstore")
	if err != nil {
		return err
	}
	defer conn.Close()
	ingest := internalapiv1.NewAuditIngestServiceClient(conn)
	work, err := os.MkdirTemp(sys.DataDir, "auditscale-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(work)

	var rows []auditRow
	var have int64
	for i, size := range sizes {
		start := time.Now()
		if err := appendAuditEvents(ingest, have, size); err != nil {
			return err
		}
		rows = append(rows, auditRow{fmt.Sprintf("append %d→%d", have, size), size - have, time.Since(start)})
		have = size
		row, err := timeVerify(sys, size, "--team", auditTeam)
		if err != nil {
			return err
		}
		rows = append(rows, row)
		if i > 0 {
			continue
		}
		file := filepath.Join(work, "export.jsonl")
		start = time.Now()
		if res, err := sys.OZ(sys.AdminToken, nil, nil, "audit", "export", "--team", auditTeam, "--output-file", file); err != nil || res.Code != 0 {
			return fmt.Errorf("oz audit export: %v %s", err, res.Stderr)
		}
		rows = append(rows, auditRow{"oz audit export", size, time.Since(start)})
		row, err = timeVerify(sys, size, "--file", file)
		if err != nil {
			return err
		}
		rows = append(rows, row)
		_ = os.Remove(file)
	}
	fmt.Printf("%-28s %10s %10s %12s\n", "operation", "events", "seconds", "events/s")
	for _, r := range rows {
		fmt.Printf("%-28s %10d %10.2f %12.0f\n", r.what, r.events, r.elapsed.Seconds(), float64(r.events)/r.elapsed.Seconds())
	}
	fmt.Println("target: a verify of 1,000,000 events completes (the time is the CLI process's, from start to exit)")
	return nil
}

// appendAuditEvents appends the events of auditTeam's chain numbered
// from+1 to to, a full batch per call, two calls in flight: the audit
// service chains them in the order it receives them, and the rows verify
// whatever order that is.
func appendAuditEvents(ingest internalapiv1.AuditIngestServiceClient, from, to int64) error {
	var next atomic.Int64
	next.Store(from)
	var wg sync.WaitGroup
	errc := make(chan error, 2)
	for range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				first := next.Add(auditBatch) - auditBatch
				if first >= to {
					return
				}
				req := &internalapiv1.AppendEventsRequest{}
				for n := first + 1; n <= min(first+auditBatch, to); n++ {
					req.Events = append(req.Events, auditEvent(n))
				}
				ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
				resp, err := ingest.AppendEvents(ctx, req)
				cancel()
				if err == nil && int(resp.GetAppended()) != len(req.Events) {
					err = fmt.Errorf("%d appended, %d duplicates", resp.GetAppended(), resp.GetDuplicates())
				}
				if err != nil {
					errc <- fmt.Errorf("append audit events %d to %d: %w", first+1, first+int64(len(req.Events)), err)
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errc)
	return <-errc
}

// auditEvent is the nth event of auditTeam's chain: a secret update as
// the secretstore records it (audit.ValidateEvent's rules; no value).
func auditEvent(n int64) *auditv1.Event {
	return &auditv1.Event{
		Id:       fmt.Sprintf("secretstore-auditscale-%08d", n),
		Time:     timestamppb.Now(),
		Actor:    &auditv1.Actor{Kind: auditv1.ActorKind_ACTOR_KIND_USER, Name: "users/" + auditTeam + "-admin", Client: "ozbench"},
		Action:   "secret.update",
		Resource: fmt.Sprintf("teams/%s/secrets/S_%04d", auditTeam, n%1000),
		Team:     auditTeam,
		Outcome:  auditv1.Outcome_OUTCOME_OK,
		Details:  map[string]string{"value_version": strconv.FormatInt(n/1000+1, 10), "value_changed": "true"},
	}
}

// timeVerify runs `oz audit verify --output json` with args as the system
// admin and returns its row: the CLI process's time from start to exit.
// The chain must verify, with want events.
func timeVerify(sys *harness.System, want int64, args ...string) (auditRow, error) {
	start := time.Now()
	res, err := sys.OZ(sys.AdminToken, nil, nil, append([]string{"audit", "verify", "--output", "json"}, args...)...)
	elapsed := time.Since(start)
	if err != nil || res.Code != 0 {
		return auditRow{}, fmt.Errorf("oz audit verify %s: exit %d: %v %s", strings.Join(args, " "), res.Code, err, res.Stderr)
	}
	var got struct {
		Valid          bool  `json:"valid"`
		VerifiedEvents int64 `json:"verified_events"`
	}
	if err := json.Unmarshal([]byte(res.Stdout), &got); err != nil {
		return auditRow{}, fmt.Errorf("oz audit verify %s: %w: %s", strings.Join(args, " "), err, res.Stdout)
	}
	if !got.Valid || got.VerifiedEvents != want {
		return auditRow{}, fmt.Errorf("oz audit verify %s: valid %v, %d events verified, want %d", strings.Join(args, " "), got.Valid, got.VerifiedEvents, want)
	}
	what := "oz audit verify (server)"
	if args[0] == "--file" {
		what = "oz audit verify --file"
	}
	return auditRow{what, want, elapsed}, nil
}

// parseSizes parses -audit-events: ascending positive counts.
func parseSizes(s string) ([]int64, error) {
	var out []int64
	for _, f := range strings.Split(s, ",") {
		n, err := strconv.ParseInt(strings.TrimSpace(f), 10, 64)
		if err != nil || n <= 0 || (len(out) > 0 && n <= out[len(out)-1]) {
			return nil, fmt.Errorf("-audit-events: %q: want ascending positive counts, e.g. 100000,1000000", s)
		}
		out = append(out, n)
	}
	return out, nil
}
