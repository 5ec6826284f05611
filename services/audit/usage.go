package audit

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	auditv1 "github.com/ozsecrets/oz/proto/gen/oz/audit/v1"
	"github.com/ozsecrets/oz/services/internal/auth"
	"github.com/ozsecrets/oz/services/internal/errs"
)

// Default and largest number of runs GetSecretUsage returns.
const (
	DefaultUsageRuns = 100
	MaxUsageRuns     = 1000
)

// clockSlack is how far the emitters' and the audit service's clocks may
// disagree: see SecretUsage.
const clockSlack = time.Minute

// UsageRequest is the input of SecretUsage.
type UsageRequest struct {
	Name        string // "teams/{team}/secrets/{secret}/usage"
	AllVersions bool
	MaxRuns     int
}

// SecretUsage answers "which runs received team secret X since its last
// rotation", from the team's chain alone:
//
//   - The secret's current incarnation starts at its latest secret.create
//     (a secret deleted and created again under the same name restarts its
//     value versions at 1). The latest secret.create, or secret.update
//     with value_changed, gives the current value version V and when it
//     was set. The secretstore's events reach the chain in the order it
//     wrote them, so the first ones met going back from the head are the
//     latest.
//   - The runs are the successful run.resolve events, at or after the
//     create's time, whose details say team secret X was injected at a
//     version >= V (any version with AllVersions). The resolver ships its
//     events on its own, so a run may reach the chain before the create
//     did: the scan goes on past the create until events appended (by the
//     audit service's clock) before the create happened, less clockSlack.
//   - With no create or update of X in the chain (it predates auditing),
//     every run that received X qualifies, and the value version is 0.
//
// Only admins of the team (and system admins) may ask: it is read from the
// audit log. The scan is linear in the chain's length.
func (s *Service) SecretUsage(ctx context.Context, p *auth.Principal, req UsageRequest) (*auditv1.SecretUsage, error) {
	team, secret, err := parseUsageName(req.Name)
	if err != nil {
		return nil, err
	}
	if err := authorize(p, team); err != nil {
		return nil, err
	}
	maxRuns := req.MaxRuns
	switch {
	case maxRuns < 0:
		return nil, errs.Field("max_runs", "must not be negative")
	case maxRuns == 0:
		maxRuns = DefaultUsageRuns
	case maxRuns > MaxUsageRuns:
		maxRuns = MaxUsageRuns
	}

	resource := "teams/" + team + "/secrets/" + secret
	var (
		version     int64
		versionTime time.Time
		haveVersion bool
		created     bool
		createTime  time.Time
		runs        []*auditv1.SecretUse
	)
	before := int64(0)
scan:
	for {
		page, err := s.store.List(ctx, Query{Team: team, BeforeSeq: before, Limit: rangePage, ScanLimit: rangePage})
		if err != nil {
			return nil, fmt.Errorf("secret usage: %w", err)
		}
		for _, ev := range page.Events {
			if created && ev.GetAppendTime().AsTime().Before(createTime.Add(-clockSlack)) {
				break scan
			}
			if ev.GetOutcome() != auditv1.Outcome_OUTCOME_OK {
				continue
			}
			switch {
			case ev.GetResource() == resource && !created:
				action := ev.GetAction()
				setsValue := action == ActionSecretCreate ||
					action == ActionSecretUpdate && ev.GetDetails()[DetailValueChanged] == "true"
				if v, ok := parseVersion(ev.GetDetails()[DetailValueVersion]); ok && setsValue && !haveVersion {
					version, versionTime, haveVersion = v, ev.GetTime().AsTime(), true
				}
				if action == ActionSecretCreate {
					created, createTime = true, ev.GetTime().AsTime()
				}
			case ev.GetAction() == ActionRunResolve:
				v, ok := InjectedVersion(ev.GetDetails(), secret)
				if !ok {
					continue
				}
				d := ev.GetDetails()
				runs = append(runs, &auditv1.SecretUse{
					RunId:        ev.GetRunId(),
					Time:         ev.GetTime(),
					ValueVersion: v,
					Agent:        d[DetailAgent],
					Trigger:      d[DetailTrigger],
					Runner:       d[DetailRunner],
					EventId:      ev.GetId(),
				})
			}
		}
		if page.NextBeforeSeq == 0 {
			break
		}
		before = page.NextBeforeSeq
	}

	kept := runs[:0]
	for _, r := range runs {
		if created && r.GetTime().AsTime().Before(createTime) {
			continue
		}
		if haveVersion && !req.AllVersions && r.GetValueVersion() < version {
			continue
		}
		kept = append(kept, r)
	}
	slices.SortStableFunc(kept, func(a, b *auditv1.SecretUse) int {
		return cmp.Compare(b.GetTime().AsTime().UnixNano(), a.GetTime().AsTime().UnixNano())
	})
	out := &auditv1.SecretUsage{
		Name:      req.Name,
		TotalRuns: int32(len(kept)),
		Runs:      kept[:min(len(kept), maxRuns)],
	}
	if haveVersion {
		out.ValueVersion = version
		out.ValueUpdateTime = timestamppb.New(versionTime)
	}
	if created {
		out.CreateTime = timestamppb.New(createTime)
	}
	return out, nil
}

func parseVersion(s string) (int64, bool) {
	v, err := strconv.ParseInt(s, 10, 64)
	return v, err == nil && v > 0
}

// parseUsageName parses "teams/{team}/secrets/{secret}/usage".
func parseUsageName(name string) (team, secret string, err error) {
	bad := errs.Field("name", `must be "teams/{team}/secrets/{secret}/usage" (team secrets only)`)
	rest, ok := strings.CutPrefix(name, "teams/")
	if !ok {
		return "", "", bad
	}
	rest, ok = strings.CutSuffix(rest, "/usage")
	if !ok {
		return "", "", bad
	}
	team, secret, ok = strings.Cut(rest, "/secrets/")
	if !ok || !ValidTeamID(team) || !validSecretName(secret) {
		return "", "", bad
	}
	return team, secret, nil
}

// validSecretName: [A-Za-z_][A-Za-z0-9_]*, at most 255 characters.
func validSecretName(s string) bool {
	if s == "" || len(s) > 255 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || c == '_' || i > 0 && '0' <= c && c <= '9') {
			return false
		}
	}
	return true
}
