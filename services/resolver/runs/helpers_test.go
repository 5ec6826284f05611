package runs_test

import (
	"testing"

	"github.com/ozsecrets/oz/services/resolver/resolvertest"
)

// both is a directory and the run service over it, called as one.
type both = resolvertest.Both

var withRuns = resolvertest.WithRuns

// idFixture is resolvertest.Teams, with its directory and the run service
// over it as d.
type idFixture struct {
	*resolvertest.Teams
	d both
}

func newIDFixture(t *testing.T) *idFixture {
	t.Helper()
	tf := resolvertest.NewTeams(t)
	return &idFixture{Teams: tf, d: withRuns(tf.D)}
}

var (
	wantKind     = resolvertest.WantKind
	wantFieldErr = resolvertest.WantField
)

func errOf[T any](_ T, err error) error { return err }

func idMust(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func strp(s string) *string { return &s }
