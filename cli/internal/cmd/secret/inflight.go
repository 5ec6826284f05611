package secret

import (
	"context"
	"fmt"
	"io"
	"strings"

	scopev1 "github.com/ozsecrets/oz/proto/gen/oz/scope/v1"

	"github.com/ozsecrets/oz/cli/internal/client"
	"github.com/ozsecrets/oz/cli/internal/cmd/cmdutil"
	"github.com/ozsecrets/oz/cli/internal/exitcode"
)

// inFlightHint is where to see the runs warnInFlight counts.
const inFlightHint = "(oz run list --in-flight)"

// inFlightHolding is what runs in flight may hold of a secret, for warnInFlight.
type inFlightHolding struct {
	what  string                                // "the previous value"
	holds func(in *scopev1.InjectedSecret) bool // of an injected secret of the right name
}

var (
	// previousValue: after a value change or a delete, runs in flight
	// hold a value rotated or deleted since.
	previousValue = inFlightHolding{"the previous value", func(in *scopev1.InjectedSecret) bool {
		return cmdutil.Stale(in.GetValueState())
	}}
	// unboundValue: after a secret became bound to hosts, runs in flight
	// that received it unbound hold its value, not a placeholder.
	unboundValue = inFlightHolding{"the value", func(in *scopev1.InjectedSecret) bool {
		return in.GetBinding() == nil &&
			in.GetValueState() != scopev1.InjectedValueState_INJECTED_VALUE_STATE_DELETED
	}}
)

// warnInFlight says on w how many runs in flight hold h of secret name
// (of team, for a team secret), after it changed or was deleted: they
// keep it until they end. It says nothing when there are none, and that
// the count is unknown when it cannot be had: the change is done either
// way.
func warnInFlight(ctx context.Context, conn *client.Conn, w io.Writer, scope cmdutil.Scope, team, name string, h inFlightHolding) {
	n, err := countInFlight(ctx, conn, scope, team, name, h)
	switch {
	case err != nil:
		lines, _ := exitcode.Describe(err)
		fmt.Fprintf(w, "the number of runs in flight holding %s of %s is unknown: %s %s\n", h.what, name, lines[0], inFlightHint)
	case n == 1:
		fmt.Fprintf(w, "1 run in flight holds %s of %s %s\n", h.what, name, inFlightHint)
	case n > 1:
		fmt.Fprintf(w, "%d runs in flight hold %s of %s %s\n", n, h.what, name, inFlightHint)
	}
}

// countInFlight counts the runs in flight that received secret name of
// scope and hold h of it: of team for a team secret; of each of the
// caller's teams for a personal one (a run receives the personal secrets
// of its triggering user only).
func countInFlight(ctx context.Context, conn *client.Conn, scope cmdutil.Scope, team, name string, h inFlightHolding) (int, error) {
	owner, teams := "teams/"+team, []string{team}
	if scope == cmdutil.ScopePersonal {
		resp, err := conn.Directory.GetCaller(ctx, &scopev1.GetCallerRequest{})
		if err != nil {
			return 0, err
		}
		owner, teams = resp.GetPrincipal().GetName(), nil
		for _, tr := range resp.GetPrincipal().GetTeams() {
			teams = append(teams, tr.GetTeam())
		}
	}
	n := 0
	for _, t := range teams {
		req := &scopev1.ListRunsRequest{Parent: "teams/" + t, InFlight: true, PageSize: 100}
		for {
			resp, err := conn.Runs.ListRuns(ctx, req)
			if err != nil {
				return 0, err
			}
			for _, r := range resp.GetRuns() {
				if holds(r, owner, name, h) {
					n++
				}
			}
			if resp.GetNextPageToken() == "" || resp.GetNextPageToken() == req.GetPageToken() {
				break
			}
			req.PageToken = resp.GetNextPageToken()
		}
	}
	return n, nil
}

// holds reports whether run r received secret name of owner and holds h
// of it. Names are unique per owner without regard to case.
func holds(r *scopev1.Run, owner, name string, h inFlightHolding) bool {
	for _, in := range r.GetInjected() {
		if in.GetOwner() == owner && strings.EqualFold(in.GetSecretName(), name) && h.holds(in) {
			return true
		}
	}
	return false
}
