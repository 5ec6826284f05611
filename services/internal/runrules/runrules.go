// Package runrules is the run-resolution decision of DESIGN §5 as a pure
// function: given a run's context (already validated), the team's agent
// identities and the candidate secrets' metadata, it says which secrets are
// injected, which are excluded and why, and which allowlisted names are
// unresolved. The decision is stated here once and made once per
// resolution, in the resolver: ResolveRun and ExplainRun both call Decide,
// so they cannot disagree.
//
// Secret is the one reference to a secret's value version that run
// resolution passes around: the secretstore lists the candidates as
// Secrets, the resolver decides on them, records the injected ones, and
// names them back to the secretstore to be sealed, which refuses one that
// is no longer as named. See docs/ARCHITECTURE.md.
package runrules

import (
	"slices"
	"strings"
	"time"

	"github.com/ozsecrets/oz/lib/envname"
	"github.com/ozsecrets/oz/lib/hostbind"
)

// Scope of a candidate secret.
type Scope int

const (
	ScopeTeam Scope = iota + 1
	ScopePersonal
)

// Secret names one value version of one secret: its metadata, never its
// value. It is the reference run resolution passes end to end, from the
// secretstore's candidates to the run's record and back to the sealing.
type Secret struct {
	Owner   string // "teams/acme" or "users/alice"
	Name    string
	Version int64 // the value version
	// Created is when this secret was created (a secret deleted and made
	// again under its name starts at version 1 again); zero when unknown
	// (records made before it was kept). The decision does not read it.
	Created time.Time
	// Binding is the secret's binding to hosts; nil: not bound. The
	// decision does not read it: a bound secret is injected as a
	// placeholder, by the same rules.
	Binding *hostbind.Binding
}

// Scope reports whether s is a team or a personal secret.
func (s Secret) Scope() Scope {
	if strings.HasPrefix(s.Owner, "users/") {
		return ScopePersonal
	}
	return ScopeTeam
}

// Same reports whether s and o name the same value version of the same
// secret: owner, name, version and creation time.
func (s Secret) Same(o Secret) bool {
	return s.Owner == o.Owner && s.Name == o.Name && s.Version == o.Version && s.Created.Equal(o.Created)
}

// SameSecrets reports whether a and b name the same value versions, in the
// same order.
func SameSecrets(a, b []Secret) bool {
	return slices.EqualFunc(a, b, Secret.Same)
}

// Identity is an agent identity and the team secrets it references.
type Identity struct {
	ID          string
	SecretNames []string
}

// AllowlistSource says where the allowlist came from (step 3).
type AllowlistSource int

const (
	AllowlistNone AllowlistSource = iota + 1
	AllowlistRun
	AllowlistEnvironment
)

// Input is a validated run context with everything the decision needs.
// Owners says whose secrets are its candidates.
type Input struct {
	Team  string // "teams/acme"
	User  string // "users/alice" for a user-initiated trigger by a team member; "" otherwise
	Agent string // the identity the run executes as
	// Identities are all the team's identities (for restrictions, step 2).
	Identities []Identity
	// RunList is the run's own list: nil when absent, non-nil (maybe empty)
	// when present. EnvList is the environment's list (nil or empty: none).
	RunList []string
	EnvList []string
	// Candidates are the team's secrets and, when User is set, the user's
	// personal secrets. Secrets of other owners are ignored.
	Candidates []Secret
}

// Owners are the owners whose secrets are candidates (step 1): the
// triggering user, when there is one, and the team.
func (in Input) Owners() []string {
	if in.User != "" {
		return []string{in.User, in.Team}
	}
	return []string{in.Team}
}

// CandidateNames are the only names whose secrets Decide can inject or
// report: the allowlist (step 3), or nil when there is none. A secret of
// another name is excluded whatever else holds, and changes nothing in
// what is injected or unresolved, so a resolution with an allowlist needs
// to read only these names' secrets (none for an empty list: it is
// non-nil and empty).
func (in Input) CandidateNames() []string {
	allow, source := Allowlist(in.RunList, in.EnvList)
	if source == AllowlistNone {
		return nil
	}
	return allow
}

// Decision is the fate of one candidate.
type Decision int

const (
	Injected Decision = iota + 1
	ExcludedNotInAllowlist
	ExcludedRestricted
	ExcludedOverridden
	// ExcludedReserved: the name is reserved (envname.Reserved); a secret
	// made before it was reserved is never injected.
	ExcludedReserved
)

// Candidate is one candidate secret with its decision.
type Candidate struct {
	Secret
	Decision Decision
	// OverridesTeam: an injected personal secret that took the place of a
	// team secret of the same name.
	OverridesTeam bool
	// RestrictedTo: for restricted team secrets, the identities that
	// reference them, sorted.
	RestrictedTo []string
}

// Reason says why an allowlisted name is unresolved.
type Reason int

const (
	NotFound Reason = iota + 1
	Restricted
	// Reserved: the name is reserved (envname.Reserved) and never injected.
	Reserved
)

// Unresolved is an allowlisted name that resolved to nothing.
type Unresolved struct {
	Name         string
	Reason       Reason
	RestrictedTo []string // for Restricted: the identities it is restricted to
}

// Result is the decision.
type Result struct {
	Source     AllowlistSource
	Allowlist  []string    // deduplicated, in the order given; nil when Source is AllowlistNone
	Candidates []Candidate // sorted by name, personal before team
	Unresolved []Unresolved
}

// Injected returns the injected candidates.
func (r Result) Injected() []Candidate {
	var out []Candidate
	for _, c := range r.Candidates {
		if c.Decision == Injected {
			out = append(out, c)
		}
	}
	return out
}

// InjectedSecrets returns the injected secrets, sorted by name (names are
// unique among them: each becomes an environment variable).
func (r Result) InjectedSecrets() []Secret {
	var out []Secret
	for _, c := range r.Candidates {
		if c.Decision == Injected {
			out = append(out, c.Secret)
		}
	}
	return out
}

// Allowlist applies step 3: the run's list if present (even empty), else
// the environment's if it lists names, else none.
func Allowlist(runList, envList []string) ([]string, AllowlistSource) {
	switch {
	case runList != nil:
		return dedupe(runList), AllowlistRun
	case len(envList) > 0:
		return dedupe(envList), AllowlistEnvironment
	}
	return nil, AllowlistNone
}

// restrictions maps each referenced team secret name to the identities
// that reference it (step 2).
func restrictions(ids []Identity) map[string][]string {
	out := map[string][]string{}
	for _, id := range ids {
		for _, n := range dedupe(id.SecretNames) {
			out[n] = append(out[n], id.ID)
		}
	}
	for n := range out {
		slices.Sort(out[n])
	}
	return out
}

// Decide applies steps 1–4 of DESIGN §5.
func Decide(in Input) Result {
	allow, source := Allowlist(in.RunList, in.EnvList)
	allowed := map[string]bool{}
	for _, n := range allow {
		allowed[n] = true
	}
	restrictedTo := restrictions(in.Identities)

	// Step 1: owner scope. Only the team's secrets and the triggering
	// user's own personal secrets are candidates.
	var cands []Candidate
	personal := map[string]bool{} // names of personal candidates that pass the allowlist
	for _, s := range in.Candidates {
		switch {
		case s.Owner == in.Team:
		case in.User != "" && s.Owner == in.User:
		default:
			continue
		}
		cands = append(cands, Candidate{Secret: s})
	}
	for i := range cands {
		c := &cands[i]
		if c.Scope() == ScopePersonal && (source == AllowlistNone || allowed[c.Name]) && !envname.IsReserved(c.Name) {
			personal[c.Name] = true
		}
	}
	for i := range cands {
		c := &cands[i]
		if envname.IsReserved(c.Name) {
			c.Decision = ExcludedReserved
			continue
		}
		inAllow := source == AllowlistNone || allowed[c.Name]
		if c.Scope() == ScopeTeam {
			// Step 2: a referenced team secret reaches only runs executing
			// as one of the identities that reference it.
			if refs, ok := restrictedTo[c.Name]; ok && !slices.Contains(refs, in.Agent) {
				c.Decision = ExcludedRestricted
				c.RestrictedTo = refs
				continue
			}
		}
		if !inAllow {
			c.Decision = ExcludedNotInAllowlist
			continue
		}
		if c.Scope() == ScopeTeam && personal[c.Name] {
			c.Decision = ExcludedOverridden
			continue
		}
		c.Decision = Injected
	}
	// Mark personal secrets that took a team secret's place.
	overridden := map[string]bool{}
	for _, c := range cands {
		if c.Decision == ExcludedOverridden {
			overridden[c.Name] = true
		}
	}
	for i := range cands {
		if cands[i].Decision == Injected && cands[i].Scope() == ScopePersonal && overridden[cands[i].Name] {
			cands[i].OverridesTeam = true
		}
	}
	slices.SortFunc(cands, func(a, b Candidate) int {
		if c := strings.Compare(a.Name, b.Name); c != 0 {
			return c
		}
		return int(b.Scope()) - int(a.Scope()) // personal first
	})

	// Step 4: every allowlisted name that resolved to nothing.
	injected := map[string]bool{}
	restrictedCand := map[string][]string{}
	for _, c := range cands {
		if c.Decision == Injected {
			injected[c.Name] = true
		}
		if c.Decision == ExcludedRestricted {
			restrictedCand[c.Name] = c.RestrictedTo
		}
	}
	var unresolved []Unresolved
	for _, n := range allow {
		if injected[n] {
			continue
		}
		if envname.IsReserved(n) {
			unresolved = append(unresolved, Unresolved{Name: n, Reason: Reserved})
		} else if refs, ok := restrictedCand[n]; ok {
			unresolved = append(unresolved, Unresolved{Name: n, Reason: Restricted, RestrictedTo: refs})
		} else {
			unresolved = append(unresolved, Unresolved{Name: n, Reason: NotFound})
		}
	}
	return Result{Source: source, Allowlist: allow, Candidates: cands, Unresolved: unresolved}
}

func dedupe(names []string) []string {
	out := make([]string, 0, len(names))
	seen := map[string]bool{}
	for _, n := range names {
		if !seen[n] {
			seen[n] = true
			out = append(out, n)
		}
	}
	return out
}

// WithoutPersonal is the decision of in on its team candidates alone (the
// candidates of res, the decision on in), as it is shown to anyone other
// than the triggering user: nobody else learns anything about a user's
// personal secrets, not even by guessing names (DESIGN §5, step 4). It is
// the same whether or not the user has personal secrets, of any name: a
// team secret a personal one overrides is shown injected, and a name only
// a personal secret resolves is shown unresolved.
func WithoutPersonal(in Input, res Result) Result {
	var team []Secret
	for _, c := range res.Candidates {
		if c.Scope() == ScopeTeam {
			team = append(team, c.Secret)
		}
	}
	in.Candidates = team
	return Decide(in)
}
