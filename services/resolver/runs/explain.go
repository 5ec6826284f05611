package runs

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/ozsecrets/oz/services/internal/runrules"
	"github.com/ozsecrets/oz/services/resolver"
)

// ExplainRun makes ResolveRun's decision for rc without values and says
// why for every candidate. Members of the team (people) and system admins.
// Personal candidates are shown to the triggering user only. Anyone else
// is shown the decision on the team's secrets alone
// (runrules.WithoutPersonal), with a note saying so: the same answer
// whether or not the user has personal secrets, of any name. With an
// allowlist it lists every allowlisted candidate and the first
// MaxUnlistedExplained other names, and says how many it left out
// (explainDecision).
//
// Returns Invalid (the fields of ResolveRun's context, and
// context.start_token, which it does not accept), PermissionDenied,
// NotFound (team), Unavailable (secretstore).
func (r *Service) ExplainRun(ctx context.Context, team string, rc RunContext) (Explanation, error) {
	if err := resolver.CheckID("team_id", team); err != nil {
		return Explanation{}, err
	}
	rc, user, err := normalize(rc)
	if err != nil {
		return Explanation{}, err
	}
	if rc.StartToken != "" {
		return Explanation{}, startTokenRefused()
	}
	p, err := resolver.Caller(ctx)
	if err != nil {
		return Explanation{}, err
	}
	if !p.IsHuman() || !(p.SystemAdmin || p.IsMember(team)) {
		return Explanation{}, resolver.Denied("only members of team %q may explain its runs", team)
	}
	prep, err := r.prepare(ctx, team, rc, user, false)
	if err != nil {
		return Explanation{}, err
	}
	showPersonal := user != "" && p.ID == user
	res, omitted, err := r.explainDecision(ctx, &prep, showPersonal)
	if err != nil {
		return Explanation{}, err
	}
	if !showPersonal {
		res = runrules.WithoutPersonal(prep.input, res)
	}
	ex := explain(prep, res, showPersonal)
	if omitted > 0 {
		ex.Notes = append(ex.Notes, fmt.Sprintf("%d more candidate(s) not in the allowlist are not listed: an explanation lists the first %d names that are not in it, by name", omitted, MaxUnlistedExplained))
	}
	return ex, nil
}

// MaxUnlistedExplained bounds the names ExplainRun lists of candidates
// that are not in the allowlist: a team may hold many thousands of
// secrets, and the explanation of a run that asks for ten should not
// grow with them. Every allowlisted name is explained.
const MaxUnlistedExplained = 100

// explainDecision is ExplainRun's decision on prep's input: every
// candidate of the owners is listed (one read of the secretstore), and
// decided on when its name is allowlisted, when there is no allowlist (the
// run would receive them all), or when it is among the first
// MaxUnlistedExplained other names; the rest are counted (omitted). The
// restrictions of those other names are read from the index, by name, and
// added to prep's input, so that they are shown as restricted when they
// are, as ResolveRun would decide without the allowlist. Unless
// showPersonal, personal candidates are left out before anything is
// counted: nobody but the triggering user learns how many there are.
func (r *Service) explainDecision(ctx context.Context, prep *prepared, showPersonal bool) (runrules.Result, int, error) {
	in := prep.input
	cands, err := r.secrets.Candidates(ctx, in.Owners(), nil)
	if err != nil {
		return runrules.Result{}, 0, sealerError(err)
	}
	if !showPersonal {
		cands = slices.DeleteFunc(cands, func(s runrules.Secret) bool { return s.Scope() == runrules.ScopePersonal })
	}
	listed := in.CandidateNames()
	if listed != nil {
		slices.SortStableFunc(cands, func(a, b runrules.Secret) int { return strings.Compare(a.Name, b.Name) })
		var kept []runrules.Secret
		var extra []string
		omitted := 0
		for _, c := range cands {
			switch {
			case slices.Contains(listed, c.Name):
			case len(extra) > 0 && extra[len(extra)-1] == c.Name:
			case len(extra) < MaxUnlistedExplained:
				extra = append(extra, c.Name)
			default:
				omitted++
				continue
			}
			kept = append(kept, c)
		}
		ids, err := r.restrictionsFor(ctx, prep.team, extra)
		if err != nil {
			return runrules.Result{}, 0, err
		}
		prep.input.Identities = slices.Concat(in.Identities, ids)
		in = prep.input
		in.Candidates = kept
		return runrules.Decide(in), omitted, nil
	}
	in.Candidates = cands
	return runrules.Decide(in), 0, nil
}

func explain(prep prepared, res runrules.Result, showPersonal bool) Explanation {
	in := prep.input
	ex := Explanation{
		Context: prep.rc, Agent: in.Agent, AllowlistSource: res.Source, Allowlist: res.Allowlist,
		Unresolved: unresolvedOf(res.Unresolved), WouldFailStrict: len(res.Unresolved) > 0,
	}
	listName := "the run's list"
	if res.Source == runrules.AllowlistEnvironment {
		listName = fmt.Sprintf("the list of environment %q", prep.env)
	}
	for _, c := range res.Candidates {
		cd := CandidateDecision{Candidate: c}
		switch c.Decision {
		case runrules.Injected:
			cd.Detail = "injected"
			if c.OverridesTeam {
				cd.Detail = "injected: this personal secret takes the place of the team secret of the same name"
			}
		case runrules.ExcludedNotInAllowlist:
			cd.Detail = "not in " + listName
		case runrules.ExcludedRestricted:
			cd.Detail = fmt.Sprintf("restricted to agent identities: %s (the run executes as %s)", strings.Join(c.RestrictedTo, ", "), in.Agent)
		case runrules.ExcludedOverridden:
			cd.Detail = "overridden by a personal secret of the triggering user"
		case runrules.ExcludedReserved:
			cd.Detail = reservedDetail(c.Name)
		}
		ex.Candidates = append(ex.Candidates, cd)
	}

	note := func(format string, args ...any) { ex.Notes = append(ex.Notes, fmt.Sprintf(format, args...)) }
	if prep.rc.Agent == "" && in.Agent == resolver.DefaultAgentID {
		note("the run executes as the team's default identity %q: no identity was chosen", resolver.DefaultAgentID)
	} else {
		note("the run executes as agent identity %q", in.Agent)
	}
	switch {
	case in.User == "":
		note("personal secrets are not given to user-less triggers (%s)", prep.rc.Trigger)
	case showPersonal:
		note("your personal secrets are candidates, and take the place of team secrets of the same name")
	default:
		note("personal secrets of the triggering user (%s) are candidates but are not shown: only they may see them. "+
			"This is the decision on the team's secrets alone: a personal secret takes the place of a team secret of the same name, "+
			"and may provide a name shown here as unresolved", in.User)
	}
	switch res.Source {
	case runrules.AllowlistRun:
		if len(res.Allowlist) == 0 {
			note("the run's own list is empty: nothing is injected")
		} else {
			note("the run's own list is the allowlist")
		}
		if prep.env != "" {
			note("the run's own list takes precedence over the list of environment %q", prep.env)
		}
	case runrules.AllowlistEnvironment:
		note("environment %q lists the allowlist", prep.env)
	default:
		if prep.env != "" {
			note("environment %q lists no secret names: there is no allowlist", prep.env)
		}
		note("no allowlist: every available candidate is injected")
	}
	if ex.WouldFailStrict {
		note("with strict set, ResolveRun would fail: %d reference(s) are unresolved", len(res.Unresolved))
	}
	return ex
}
