package resolver

import (
	"context"

	"github.com/ozsecrets/oz/services/internal/kv"
)

// Hooks of the identity, environment and runner tests.

// IdentitiesTestForgetDefault removes the record of team's default
// identity, as in a database made before identities existed.
func IdentitiesTestForgetDefault(ctx context.Context, d *Directory, team string) error {
	return d.store.Apply(ctx, nil, []kv.Write{kv.Delete(agentKey(team, DefaultAgentID))})
}

// IdentitiesTestSnapshot returns every record of d's store, for "nothing
// changed" checks.
func IdentitiesTestSnapshot(ctx context.Context, d *Directory) ([]kv.KV, error) {
	return d.store.Scan(ctx, "", "", 0)
}
