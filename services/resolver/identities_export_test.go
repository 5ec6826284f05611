package resolver

import "context"

// Hooks of the identity, environment and runner tests.

// IdentitiesTestForgetDefault removes the record of team's default
// identity, as in a database made before identities existed.
func IdentitiesTestForgetDefault(ctx context.Context, d *Directory, team string) error {
	return d.store.Apply(ctx, nil, []Write{Delete(agentKey(team, DefaultAgentID))})
}

// IdentitiesTestSnapshot returns every record of d's store, for "nothing
// changed" checks.
func IdentitiesTestSnapshot(ctx context.Context, d *Directory) ([]KV, error) {
	return d.store.Scan(ctx, "", "", 0)
}
