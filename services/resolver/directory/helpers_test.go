package directory_test

import (
	"testing"

	"github.com/ozsecrets/oz/services/resolver/resolvertest"
)

var newIDFixture = resolvertest.NewTeams

func idMust(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func errOf[T any](_ T, err error) error { return err }

var wantFieldErr = resolvertest.WantField
