package refwire_test

import (
	"testing"
	"time"

	"github.com/ozsecrets/oz/lib/hostbind"
	"github.com/ozsecrets/oz/services/internal/runrules"
	"github.com/ozsecrets/oz/services/internal/runrules/refwire"
)

func TestRoundTrip(t *testing.T) {
	created := time.Date(2026, 3, 1, 9, 0, 0, 123, time.UTC)
	bound := &hostbind.Binding{Hosts: []string{"api.openai.com", "*.example.com"}, AllowQuery: true}
	in := []runrules.Secret{
		{Owner: "teams/acme", Name: "API_KEY", Version: 3, Created: created, Binding: bound},
		{Owner: "users/alice", Name: "GITHUB_TOKEN", Version: 1}, // no creation time: a record made before it was kept
	}
	wire := refwire.ToProto(in)
	if wire[1].GetCreateTime() != nil {
		t.Errorf("zero creation time: got %v on the wire, want none", wire[1].GetCreateTime())
	}
	if wire[1].GetBinding() != nil {
		t.Errorf("unbound secret: got binding %v on the wire, want none", wire[1].GetBinding())
	}
	out := refwire.FromProto(wire)
	if !runrules.SameSecrets(out, in) {
		t.Errorf("round trip: got %v, want %v", out, in)
	}
	for i := range in {
		if !out[i].Binding.Equal(in[i].Binding) {
			t.Errorf("round trip of %s: got binding %+v, want %+v", in[i].Name, out[i].Binding, in[i].Binding)
		}
	}
}
