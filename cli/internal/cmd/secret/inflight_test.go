package secret

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	scopev1 "github.com/ozsecrets/oz/proto/gen/oz/scope/v1"

	"github.com/ozsecrets/oz/cli/internal/cmd/cmdutil"
	"github.com/ozsecrets/oz/cli/internal/iostreams"
	"github.com/ozsecrets/oz/cli/internal/testutil/ozfake"
)

const (
	current = scopev1.InjectedValueState_INJECTED_VALUE_STATE_CURRENT
	rotated = scopev1.InjectedValueState_INJECTED_VALUE_STATE_ROTATED
	deleted = scopev1.InjectedValueState_INJECTED_VALUE_STATE_DELETED
)

// holding is a run in flight that received each of secrets
// ("OWNER/NAME") in state.
func holding(state scopev1.InjectedValueState, secrets ...string) *scopev1.Run {
	r := &scopev1.Run{State: scopev1.RunState_RUN_STATE_RESOLVED}
	for _, s := range secrets {
		i := strings.LastIndexByte(s, '/')
		r.Injected = append(r.Injected, &scopev1.InjectedSecret{Owner: s[:i], SecretName: s[i+1:], ValueState: state})
		r.HoldsStaleValues = r.HoldsStaleValues || state == rotated || state == deleted
	}
	return r
}

// inFlightRuns answers ListRuns with pages[team], one page per call.
func inFlightRuns(pages map[string][][]*scopev1.Run) *ozfake.Runs {
	return &ozfake.Runs{ListRunsFunc: func(_ context.Context, r *scopev1.ListRunsRequest) (*scopev1.ListRunsResponse, error) {
		ps := pages[strings.TrimPrefix(r.GetParent(), "teams/")]
		i := 0
		if r.GetPageToken() != "" {
			fmt.Sscanf(r.GetPageToken(), "p%d", &i)
		}
		if i >= len(ps) {
			return &scopev1.ListRunsResponse{}, nil
		}
		resp := &scopev1.ListRunsResponse{Runs: ps[i]}
		if i+1 < len(ps) {
			resp.NextPageToken = fmt.Sprintf("p%d", i+1)
		}
		return resp, nil
	}}
}

// acmeRuns: three runs of team acme hold a previous value of team secret
// API_KEY (one named in another case, one on a second page); others hold
// its current value, or alice's personal API_KEY, or another secret.
var acmeRuns = map[string][][]*scopev1.Run{
	"acme": {
		{
			holding(rotated, "teams/acme/API_KEY", "teams/acme/OTHER"),
			holding(current, "teams/acme/API_KEY"),
			holding(rotated, "users/alice/API_KEY"),
			holding(deleted, "teams/acme/api_key"),
			holding(rotated, "teams/acme/OTHER"),
		},
		{holding(rotated, "teams/acme/API_KEY")},
	},
}

// aliceRuns: alice's personal API_KEY, rotated, in runs of acme and beta;
// beta's team API_KEY too, which is not hers.
var aliceRuns = map[string][][]*scopev1.Run{
	"acme": {{holding(rotated, "users/alice/API_KEY"), holding(current, "users/alice/API_KEY")}},
	"beta": {{holding(deleted, "users/alice/API_KEY"), holding(rotated, "teams/beta/API_KEY"), holding(rotated, "users/bob/API_KEY")}},
}

func TestInFlightCount(t *testing.T) {
	const hint = " (oz run list --in-flight)\n"
	tests := []struct {
		name        string
		scope       cmdutil.Scope
		runs        *ozfake.Runs
		delete      bool
		description bool // a description-only update
		wantParents []string
		wantStderr  string
	}{
		{
			name: "UpdateTeam", scope: cmdutil.ScopeTeam, runs: inFlightRuns(acmeRuns),
			wantParents: []string{"teams/acme", "teams/acme"},
			wantStderr:  "3 runs in flight hold the previous value of API_KEY" + hint,
		},
		{
			name: "DeleteTeam", scope: cmdutil.ScopeTeam, runs: inFlightRuns(acmeRuns), delete: true,
			wantParents: []string{"teams/acme", "teams/acme"},
			wantStderr:  "3 runs in flight hold the previous value of API_KEY" + hint,
		},
		{
			name: "UpdatePersonal", scope: cmdutil.ScopePersonal, runs: inFlightRuns(aliceRuns),
			wantParents: []string{"teams/acme", "teams/beta"},
			wantStderr:  "2 runs in flight hold the previous value of API_KEY" + hint,
		},
		{
			name: "DeletePersonal", scope: cmdutil.ScopePersonal, runs: inFlightRuns(aliceRuns), delete: true,
			wantParents: []string{"teams/acme", "teams/beta"},
			wantStderr:  "2 runs in flight hold the previous value of API_KEY" + hint,
		},
		{
			name: "One", scope: cmdutil.ScopeTeam,
			runs:        inFlightRuns(map[string][][]*scopev1.Run{"acme": {{holding(rotated, "teams/acme/API_KEY")}}}),
			wantParents: []string{"teams/acme"},
			wantStderr:  "1 run in flight holds the previous value of API_KEY" + hint,
		},
		{
			name: "NoneSaysNothing", scope: cmdutil.ScopeTeam,
			runs:        inFlightRuns(map[string][][]*scopev1.Run{"acme": {{holding(current, "teams/acme/API_KEY")}}}),
			wantParents: []string{"teams/acme"},
		},
		{
			name: "QueryFailsCountUnknown", scope: cmdutil.ScopeTeam,
			runs: &ozfake.Runs{ListRunsFunc: func(context.Context, *scopev1.ListRunsRequest) (*scopev1.ListRunsResponse, error) {
				return nil, status.Error(codes.Unavailable, "resolver unavailable")
			}},
			// Unavailable is sent again (client.DefaultRetries) before the
			// count is given up.
			wantParents: []string{"teams/acme", "teams/acme", "teams/acme"},
			wantStderr:  "the number of runs in flight holding the previous value of API_KEY is unknown: the gateway answered: resolver unavailable" + hint,
		},
		{
			name: "DeleteQueryFailsCountUnknown", scope: cmdutil.ScopePersonal, delete: true,
			runs: &ozfake.Runs{ListRunsFunc: func(context.Context, *scopev1.ListRunsRequest) (*scopev1.ListRunsResponse, error) {
				return nil, status.Error(codes.PermissionDenied, "denied")
			}},
			wantParents: []string{"teams/acme"},
			wantStderr:  "the number of runs in flight holding the previous value of API_KEY is unknown: denied" + hint,
		},
		{
			name: "DescriptionOnlyDoesNotAsk", scope: cmdutil.ScopeTeam, runs: inFlightRuns(acmeRuns), description: true,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := ozfake.StartServices(t, ozfake.Services{
				Secrets:   &ozfake.Secrets{UpdateSecretFunc: updateOK, DeleteSecretFunc: deleteOK},
				Directory: &ozfake.Directory{GetCallerFunc: ozfake.Caller("alice", "acme", "beta")},
				Runs:      tt.runs,
			})
			ios, in, out, errOut := iostreams.Test()
			var err error
			switch {
			case tt.delete:
				err = runDelete(context.Background(), &DeleteOptions{
					IO: ios, Connect: connectTo(srv), Scope: tt.scope, Team: "acme", Name: "API_KEY", Force: true,
				})
			case tt.description:
				err = runUpdate(context.Background(), &UpdateOptions{
					IO: ios, Connect: connectTo(srv), Scope: tt.scope, Team: "acme", Name: "API_KEY", SetDescription: true, Description: "d",
				})
			default:
				in.WriteString("new-value\n")
				err = runUpdate(context.Background(), &UpdateOptions{
					IO: ios, Connect: connectTo(srv), Scope: tt.scope, Team: "acme", Name: "API_KEY", Value: true,
				})
			}
			if err != nil {
				t.Fatalf("got error %v, want none: the count never fails the command", err)
			}
			var parents []string
			for _, c := range srv.CallsTo("ListRuns") {
				req := c.Req.(*scopev1.ListRunsRequest)
				if !req.GetInFlight() {
					t.Errorf("got %v, want in_flight", req)
				}
				parents = append(parents, req.GetParent())
			}
			if strings.Join(parents, ",") != strings.Join(tt.wantParents, ",") {
				t.Errorf("got ListRuns of %v, want %v", parents, tt.wantParents)
			}
			if got := errOut.String(); got != tt.wantStderr {
				t.Errorf("got stderr %q, want %q", got, tt.wantStderr)
			}
			if out.Len() != 0 {
				t.Errorf("got stdout %q, want none (not a terminal)", out.String())
			}
			if strings.Contains(errOut.String(), "new-value") {
				t.Error("the value went to stderr")
			}
		})
	}
}
