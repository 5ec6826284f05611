package audit

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	auditv1 "github.com/ozsecrets/oz/proto/gen/oz/audit/v1"
	secretsv1 "github.com/ozsecrets/oz/proto/gen/oz/secrets/v1"
	"github.com/ozsecrets/oz/services/internal/auth"
	"github.com/ozsecrets/oz/services/internal/errs"
)

// Review thresholds, in days.
const (
	DefaultStaleDays  = 90
	DefaultUnusedDays = 30
	MaxReviewDays     = 36500
)

// Inventory reads what an access review covers from the services that own
// it: secrets from the secretstore, agent identities and environments from
// the resolver. Every method acts as the caller of the request ctx belongs
// to — implementations forward the caller's own credentials — so the
// owning services' rules apply: a caller they refuse gets their
// PermissionDenied. Errors are errs kinds (KindUnavailable when a service
// cannot be reached). Implementations must be safe for concurrent use.
type Inventory interface {
	// TeamSecrets returns the metadata of every secret of team.
	TeamSecrets(ctx context.Context, team string) ([]SecretMeta, error)
	// PersonalSecrets returns the metadata of the caller's own personal
	// secrets.
	PersonalSecrets(ctx context.Context) ([]SecretMeta, error)
	// Agents returns every agent identity of team, with the names it
	// references.
	Agents(ctx context.Context, team string) ([]Referrer, error)
	// Environments returns every environment of team, with the names it
	// lists.
	Environments(ctx context.Context, team string) ([]Referrer, error)
}

// SecretMeta is a secret's metadata, as the secretstore lists it.
type SecretMeta struct {
	Name            string // "teams/acme/secrets/API_KEY", "users/alice/secrets/SSH_KEY"
	ID              string // "API_KEY"
	Personal        bool
	ValueVersion    int64
	CreateTime      time.Time
	ValueUpdateTime time.Time // zero: CreateTime
}

// Referrer is an agent identity or an environment and the secret names it
// references.
type Referrer struct {
	Name        string // "teams/acme/agents/deployer", "teams/acme/environments/ops-tools"
	SecretNames []string
}

// ReviewRequest is the input of Review.
type ReviewRequest struct {
	Parent     string // "teams/{team}"
	StaleDays  int    // 0: DefaultStaleDays
	UnusedDays int    // 0: DefaultUnusedDays
}

// Review is an access review of a team's secrets (ReviewSecrets): every
// team secret with when a run last received it, the identities and
// environments that reference it and its flags; a row for every dangling
// name; and the caller's own personal secrets. Only admins of the team
// (and system admins) may ask, and Review checks that before anything is
// read; the inventory is then read with the caller's credentials, so the
// secretstore's and resolver's rules apply too.
//
// Last injected comes from the team's chain: the newest successful
// run.resolve that named the secret ("injected.{NAME}") at or after the
// secret's create time, any value version. The chain is scanned from its
// head and the scan stops once every team secret has been found, or has
// been searched back to its create time (by append time, less
// clockSlack); a found one is searched back clockSlack further, in case
// resolvers shipped their events out of order. So the cost is linear in
// the events appended since the oldest team secret no run has received
// was created — the whole chain, at worst. Personal secrets are recorded
// by count only, so when one was last injected is unknown.
func (s *Service) Review(ctx context.Context, p *auth.Principal, req ReviewRequest) (*auditv1.ReviewSecretsResponse, error) {
	team, ok := strings.CutPrefix(req.Parent, "teams/")
	if !ok || !ValidTeamID(team) {
		return nil, errs.Field("parent", `must be "teams/{team}"`)
	}
	if err := authorize(p, team); err != nil {
		return nil, err
	}
	staleDays, err := reviewDays("stale_days", req.StaleDays, DefaultStaleDays)
	if err != nil {
		return nil, err
	}
	unusedDays, err := reviewDays("unused_days", req.UnusedDays, DefaultUnusedDays)
	if err != nil {
		return nil, err
	}
	if s.inventory == nil {
		return nil, errs.E(errs.KindUnavailable, "access reviews are not configured: the audit service has no secretstore or resolver address")
	}
	now := s.now()

	secrets, err := s.inventory.TeamSecrets(ctx, team)
	if err != nil {
		return nil, err
	}
	personal, err := s.inventory.PersonalSecrets(ctx)
	if err != nil {
		return nil, err
	}
	agents, err := s.inventory.Agents(ctx, team)
	if err != nil {
		return nil, err
	}
	envs, err := s.inventory.Environments(ctx, team)
	if err != nil {
		return nil, err
	}

	created := make(map[string]time.Time, len(secrets))
	for _, sec := range secrets {
		created[sec.ID] = sec.CreateTime
	}
	last, err := s.lastInjections(ctx, team, created)
	if err != nil {
		return nil, err
	}

	byAgent, byEnv := referrers(agents), referrers(envs)
	staleBefore := now.Add(-time.Duration(staleDays) * 24 * time.Hour)
	unusedBefore := now.Add(-time.Duration(unusedDays) * 24 * time.Hour)
	var rows []*auditv1.SecretReview
	for _, sec := range secrets {
		row := metaRow(sec)
		row.InjectionsTracked = true
		row.Agents, row.Environments = byAgent[sec.ID], byEnv[sec.ID]
		if stale(sec, staleBefore) {
			row.Flags = append(row.Flags, auditv1.ReviewFlag_REVIEW_FLAG_STALE)
		}
		lastUse := sec.CreateTime
		if in, ok := last[sec.ID]; ok {
			row.LastInjectTime, row.LastInjectRunId = timestamppb.New(in.time), in.run
			lastUse = in.time
		}
		if lastUse.Before(unusedBefore) {
			row.Flags = append(row.Flags, auditv1.ReviewFlag_REVIEW_FLAG_UNUSED)
		}
		if len(row.Agents) > 0 {
			row.Flags = append(row.Flags, auditv1.ReviewFlag_REVIEW_FLAG_RESTRICTED)
		}
		rows = append(rows, row)
	}
	for _, name := range danglingNames(created, byAgent, byEnv) {
		rows = append(rows, &auditv1.SecretReview{
			Name:         "teams/" + team + "/secrets/" + name,
			SecretId:     name,
			Scope:        secretsv1.Scope_SCOPE_TEAM,
			Agents:       byAgent[name],
			Environments: byEnv[name],
			Flags:        []auditv1.ReviewFlag{auditv1.ReviewFlag_REVIEW_FLAG_DANGLING},
		})
	}
	for _, sec := range personal {
		row := metaRow(sec)
		// Identities restrict team secrets only; an environment's list
		// picks personal secrets too.
		row.Environments = byEnv[sec.ID]
		if stale(sec, staleBefore) {
			row.Flags = append(row.Flags, auditv1.ReviewFlag_REVIEW_FLAG_STALE)
		}
		rows = append(rows, row)
	}
	slices.SortStableFunc(rows, func(a, b *auditv1.SecretReview) int {
		return cmp.Or(
			cmp.Compare(strings.ToUpper(a.GetSecretId()), strings.ToUpper(b.GetSecretId())),
			cmp.Compare(a.GetScope(), b.GetScope()), // team before personal
			cmp.Compare(a.GetSecretId(), b.GetSecretId()),
		)
	})
	return &auditv1.ReviewSecretsResponse{
		Secrets:    rows,
		ReviewTime: timestamppb.New(now),
		StaleDays:  int32(staleDays),
		UnusedDays: int32(unusedDays),
	}, nil
}

func reviewDays(field string, v, def int) (int, error) {
	switch {
	case v < 0:
		return 0, errs.Field(field, "must not be negative")
	case v == 0:
		return def, nil
	case v > MaxReviewDays:
		return 0, errs.Field(field, "must be at most %d", MaxReviewDays)
	}
	return v, nil
}

// metaRow is the row of an existing secret, before flags and references.
func metaRow(sec SecretMeta) *auditv1.SecretReview {
	scope := secretsv1.Scope_SCOPE_TEAM
	if sec.Personal {
		scope = secretsv1.Scope_SCOPE_PERSONAL
	}
	return &auditv1.SecretReview{
		Name:            sec.Name,
		SecretId:        sec.ID,
		Scope:           scope,
		ValueVersion:    sec.ValueVersion,
		CreateTime:      optionalTimestamp(sec.CreateTime),
		ValueUpdateTime: optionalTimestamp(valueTime(sec)),
	}
}

func valueTime(sec SecretMeta) time.Time {
	if sec.ValueUpdateTime.IsZero() {
		return sec.CreateTime
	}
	return sec.ValueUpdateTime
}

func stale(sec SecretMeta, before time.Time) bool {
	t := valueTime(sec)
	return !t.IsZero() && t.Before(before)
}

func optionalTimestamp(t time.Time) *timestamppb.Timestamp {
	if t.IsZero() {
		return nil
	}
	return timestamppb.New(t)
}

// referrers maps each referenced secret name to the sorted resource names
// of the referrers that reference it.
func referrers(rs []Referrer) map[string][]string {
	out := map[string][]string{}
	for _, r := range rs {
		for _, n := range r.SecretNames {
			if !slices.Contains(out[n], r.Name) {
				out[n] = append(out[n], r.Name)
			}
		}
	}
	for _, names := range out {
		slices.Sort(names)
	}
	return out
}

// danglingNames are the referenced names no team secret answers. Names
// match exactly, as in run resolution.
func danglingNames(secrets map[string]time.Time, refs ...map[string][]string) []string {
	var out []string
	for _, m := range refs {
		for n := range m {
			if _, ok := secrets[n]; !ok && !slices.Contains(out, n) {
				out = append(out, n)
			}
		}
	}
	slices.Sort(out)
	return out
}

// injection is the newest run.resolve found for a secret.
type injection struct {
	time time.Time
	run  string
}

// lastInjections finds, for each team secret of created (name → create
// time), the newest successful run.resolve of team's chain that injected
// it at or after its create time. See Review for how far it scans.
func (s *Service) lastInjections(ctx context.Context, team string, created map[string]time.Time) (map[string]injection, error) {
	found := make(map[string]injection, len(created))
	if len(created) == 0 {
		return found, nil
	}
	// stop is how far back the scan must go for every secret: events
	// appended before it cannot change an answer. It is recomputed when an
	// answer changed: at most once per secret, plus once per run.resolve
	// that came in out of order.
	var stop time.Time
	dirty := true
	horizon := func() (h time.Time) {
		for name, c := range created {
			t := c
			if in, ok := found[name]; ok {
				t = in.time
			}
			if h.IsZero() || t.Before(h) {
				h = t
			}
		}
		return h.Add(-clockSlack)
	}
	before := int64(0)
	for {
		page, err := s.store.List(ctx, Query{Team: team, BeforeSeq: before, Limit: rangePage, ScanLimit: rangePage})
		if err != nil {
			return nil, fmt.Errorf("access review: %w", err)
		}
		for _, ev := range page.Events {
			if dirty {
				stop, dirty = horizon(), false
			}
			if ev.GetAppendTime().AsTime().Before(stop) {
				return found, nil
			}
			if ev.GetAction() != ActionRunResolve || ev.GetOutcome() != auditv1.Outcome_OUTCOME_OK {
				continue
			}
			t := ev.GetTime().AsTime()
			for name := range InjectedVersions(ev.GetDetails()) {
				c, ok := created[name]
				if !ok || t.Before(c) {
					continue
				}
				if in, ok := found[name]; !ok || t.After(in.time) {
					found[name] = injection{time: t, run: ev.GetRunId()}
					dirty = true
				}
			}
		}
		if page.NextBeforeSeq == 0 {
			return found, nil
		}
		before = page.NextBeforeSeq
	}
}
