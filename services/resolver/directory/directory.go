// Package directory is the resolver's directory (DESIGN §3): teams, users
// and their memberships, bearer tokens and their authentication
// (Authenticate, for every service), runners and integrations. See
// docs/ARCHITECTURE.md.
//
// Every operation applies the authorization rules of DESIGN §3 to the
// principal carried by the context, checking permission before existence,
// and writes its change with its audit event in one resolver.Store.Apply.
// Run resolution (package runs) stands on it: its teams, memberships,
// integrations and the tokens of agent identities.
package directory

import (
	"github.com/ozsecrets/oz/services/internal/auth"
	"github.com/ozsecrets/oz/services/resolver"
)

// Directory holds teams, users, memberships, tokens, runners and
// integrations, and authenticates bearer tokens. It is safe for concurrent
// use.
type Directory struct {
	s *resolver.Store
	// tokens are the rules of issuing tokens (tokens.go); notices tells
	// caches of revocations.
	tokens  TokenPolicy
	notices *auth.Notices
}

// New returns the Directory kept in s, with DefaultTokenPolicy.
func New(s *resolver.Store) *Directory {
	return &Directory{s: s, tokens: DefaultTokenPolicy(), notices: auth.NewNotices(nil)}
}

// Store is the store the Directory keeps its records in.
func (d *Directory) Store() *resolver.Store { return d.s }

var _ auth.Authenticator = (*Directory)(nil)
