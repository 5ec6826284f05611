package runs

import (
	"context"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"strings"

	"github.com/ozsecrets/oz/services/internal/auth"
	"github.com/ozsecrets/oz/services/internal/errs"
	"github.com/ozsecrets/oz/services/internal/runrules"
	"github.com/ozsecrets/oz/services/resolver"
)

// GetRun returns run id of team. Members of the team (people), system
// admins, and runners granted the team. Other users' personal secrets are
// redacted; a run in flight says which of its values are stale.
//
// Returns Invalid (fields team_id, run_id), PermissionDenied, NotFound.
func (r *Service) GetRun(ctx context.Context, team, id string) (Run, error) {
	if err := resolver.CheckID("team_id", team); err != nil {
		return Run{}, err
	}
	if !resolver.ValidRunID(id) {
		return Run{}, errs.Field("run_id", resolver.RunIDRule)
	}
	p, err := resolver.Caller(ctx)
	if err != nil {
		return Run{}, err
	}
	if !mayRead(p, team) {
		return Run{}, resolver.Denied("only members of team %q may read its runs", team)
	}
	var rec runRecord
	if _, err := r.s.Get(ctx, resolver.RunKey(team, id), &rec); err != nil {
		if resolver.IsNotFound(err) {
			return Run{}, errs.E(errs.KindNotFound, "run %q not found in team %q", id, team)
		}
		return Run{}, fmt.Errorf("get run: %w", err)
	}
	return r.forReader(ctx, []Run{rec.run()}, p)[0], nil
}

// redact returns run as p may see it: the run's own view to its
// triggering user; to anyone else, the decision on the team's secrets
// alone (Run.Others), the same whether or not the user has personal
// secrets. A record made before Others was kept has its personal secrets
// left out.
func redact(run Run, p *auth.Principal) Run {
	others := run.Others
	run.Others = nil
	if run.Context.User == "" || (p.Kind == auth.KindUser && resolver.UserName(p.ID) == run.Context.User) {
		return run
	}
	if others != nil {
		run.Injected, run.Unresolved = others.Injected, others.Unresolved
		return run
	}
	run.Injected = withoutPersonal(run.Injected)
	return run
}

// withoutPersonal returns the team secrets of injected.
func withoutPersonal(injected []InjectedSecret) []InjectedSecret {
	var out []InjectedSecret
	for _, s := range injected {
		if s.Scope() == runrules.ScopeTeam {
			out = append(out, s)
		}
	}
	return out
}

// maxRunsScanned bounds the index entries one ListRuns call reads, so that
// a filter matching little cannot make it read a team's whole history; a
// page may then be short, with a next-page token.
const maxRunsScanned = 10 * resolver.MaxPageSize

// ListRuns lists team's runs, newest first (by start), that match f.
// Members of the team (people), system admins, and runners granted the
// team. Other users' personal secrets are redacted; runs in flight say
// which of their values are stale. A page may hold fewer than page.Size runs
// and still have a next-page token.
//
// Returns Invalid (fields team_id, agent, trigger, end_time, page_size,
// page_token), PermissionDenied, NotFound (team).
func (r *Service) ListRuns(ctx context.Context, team string, f RunFilter, page resolver.Page) ([]Run, string, error) {
	if err := resolver.CheckID("team_id", team); err != nil {
		return nil, "", err
	}
	if f.Agent != "" && !resolver.ValidID(f.Agent) {
		return nil, "", errs.Field("agent", "must be empty or an agent identity id: it %s", resolver.IDRule)
	}
	if f.Trigger != 0 && !f.Trigger.Valid() {
		return nil, "", errs.Field("trigger", resolver.TriggerRule)
	}
	if !f.Start.IsZero() && !f.End.IsZero() && f.End.Before(f.Start) {
		return nil, "", errs.Field("end_time", "must not be before start_time")
	}
	prefix := resolver.RunsByTimePrefix(team)
	if f.InFlight {
		prefix = resolver.RunsInFlightPrefix(team)
	}
	size, after, err := runsCursor(page, prefix)
	if err != nil {
		return nil, "", err
	}
	p, err := resolver.Caller(ctx)
	if err != nil {
		return nil, "", err
	}
	if !mayRead(p, team) {
		return nil, "", resolver.Denied("only members of team %q may list its runs", team)
	}
	if _, err := r.s.Team(ctx, team); err != nil {
		return nil, "", err
	}
	if !f.End.IsZero() {
		// Past every run created at or after End: "0" sorts after "/".
		if skip := prefix + resolver.InvertedTime(f.End) + "0"; skip > after {
			after = skip
		}
	}
	stop := "" // keys after this are older than Start
	if !f.Start.IsZero() {
		stop = prefix + resolver.InvertedTime(f.Start) + "0"
	}

	var (
		runs      []Run
		pos       []string // index key of each run
		scanned   int
		exhausted bool // every matching index entry was read
	)
scan:
	for {
		limit := min(size+1, maxRunsScanned-scanned)
		if limit <= 0 {
			break // the budget is spent: the page ends here, with a token
		}
		kvs, err := r.s.KV().Scan(ctx, prefix, after, limit)
		if err != nil {
			return nil, "", fmt.Errorf("list runs: %w", err)
		}
		for _, kv := range kvs {
			if stop != "" && kv.Key > stop {
				exhausted = true
				break scan
			}
			scanned++
			after = kv.Key
			id := kv.Key[len(prefix)+resolver.InvertedLen+1:]
			var rec runRecord
			if _, err := r.s.Get(ctx, resolver.RunKey(team, id), &rec); resolver.IsNotFound(err) {
				continue
			} else if err != nil {
				return nil, "", fmt.Errorf("list runs: %w", err)
			}
			run := rec.run()
			if (f.Agent != "" && run.Agent != f.Agent) || (f.Trigger != 0 && run.Context.Trigger != f.Trigger) {
				continue
			}
			runs, pos = append(runs, run), append(pos, kv.Key)
			if len(runs) > size {
				break scan
			}
		}
		if len(kvs) < limit {
			exhausted = true
			break
		}
	}
	next := ""
	switch {
	case len(runs) > size:
		runs, next = runs[:size], runsToken(prefix, pos[size-1])
	case !exhausted:
		next = runsToken(prefix, after)
	}
	return r.forReader(ctx, runs, p), next, nil
}

// ListRuns page tokens are the index position "{inverted time}/{run}" to
// continue after, in unpadded URL-safe base64.
func runsToken(prefix, key string) string {
	return base64.RawURLEncoding.EncodeToString([]byte(strings.TrimPrefix(key, prefix)))
}

func runsCursor(page resolver.Page, prefix string) (size int, after string, err error) {
	if size, _, err = (resolver.Page{Size: page.Size}).Cursor(); err != nil {
		return 0, "", err
	}
	if page.Token == "" {
		return size, "", nil
	}
	b, err := base64.RawURLEncoding.DecodeString(page.Token)
	s := string(b)
	bad := errs.Field("page_token", "must be a next_page_token from a previous response")
	if err != nil || len(s) < resolver.InvertedLen+2 || s[resolver.InvertedLen] != '/' || !resolver.ValidRunID(s[resolver.InvertedLen+1:]) {
		return 0, "", bad
	}
	if _, err := hex.DecodeString(s[:resolver.InvertedLen]); err != nil || strings.ToLower(s[:resolver.InvertedLen]) != s[:resolver.InvertedLen] {
		return 0, "", bad
	}
	return size, prefix + s, nil
}
