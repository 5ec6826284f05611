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

// warnInFlight says on w how many runs in flight hold the previous value
// of secret name (of team, for a team secret), after its value was
// changed or it was deleted: they keep it until they end. It says
// nothing when there are none, and that the count is unknown when it
// cannot be had: the change is done either way.
func warnInFlight(ctx context.Context, conn *client.Conn, w io.Writer, scope cmdutil.Scope, team, name string) {
	n, err := countInFlight(ctx, conn, scope, team, name)
	switch {
	case err != nil:
		lines, _ := exitcode.Describe(err)
		fmt.Fprintf(w, "the number of runs in flight holding the previous value of %s is unknown: %s %s\n", name, lines[0], inFlightHint)
	case n == 1:
		fmt.Fprintf(w, "1 run in flight holds the previous value of %s %s\n", name, inFlightHint)
	case n > 1:
		fmt.Fprintf(w, "%d runs in flight hold the previous value of %s %s\n", n, name, inFlightHint)
	}
}

// countInFlight counts the runs in flight that received secret name of
// scope and hold a value of it rotated or deleted since: of team for a
// team secret; of each of the caller's teams for a personal one (a run
// receives the personal secrets of its triggering user only).
func countInFlight(ctx context.Context, conn *client.Conn, scope cmdutil.Scope, team, name string) (int, error) {
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
				if holdsStale(r, owner, name) {
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

// holdsStale reports whether run r received secret name of owner and
// holds a value of it rotated or deleted since. Names are unique per
// owner without regard to case.
func holdsStale(r *scopev1.Run, owner, name string) bool {
	for _, in := range r.GetInjected() {
		if in.GetOwner() == owner && strings.EqualFold(in.GetSecretName(), name) && cmdutil.Stale(in.GetValueState()) {
			return true
		}
	}
	return false
}
