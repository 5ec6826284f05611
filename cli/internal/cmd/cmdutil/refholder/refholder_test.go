package refholder

import (
	"slices"
	"testing"

	"github.com/urfave/cli/v2"

	scopev1 "github.com/ozsecrets/oz/proto/gen/oz/scope/v1"
)

// testKind has a field before the secret flags and one after them.
var testKind = &Kind[*scopev1.Agent, Item]{
	Noun: "widget", Short: "widget", Collection: "widgets",
	Fields: []Field{
		{Flag: "colour", Path: "colour", AfterSecrets: true},
		{Flag: "size", Path: "size"},
	},
	ID:   (*scopev1.Agent).GetAgentId,
	Item: func(it Item, _ *scopev1.Agent) Item { return it },
}

func names(flags []cli.Flag) []string {
	var out []string
	for _, f := range flags {
		out = append(out, f.Names()[0])
	}
	return out
}

func TestEditFlags(t *testing.T) {
	got := names(testKind.editFlags(false, "", &cli.StringSliceFlag{Name: "secret"}))
	if want := []string{"description", "size", "secret", "colour"}; !slices.Equal(got, want) {
		t.Errorf("got create flags %v, want %v", got, want)
	}
	got = names(testKind.editFlags(true, "", &cli.StringSliceFlag{Name: "add-secret"}, &cli.StringSliceFlag{Name: "remove-secret"}))
	if want := []string{"description", "size", "add-secret", "remove-secret", "colour"}; !slices.Equal(got, want) {
		t.Errorf("got update flags %v, want %v", got, want)
	}
}

func TestUpdateFlags(t *testing.T) {
	if got, want := testKind.updateFlags(), "--description, --colour, --size, --add-secret or --remove-secret"; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
}

func TestCommon(t *testing.T) {
	tests := []struct {
		name     string
		r        *scopev1.Agent
		wantName string
		wantTeam string
	}{
		{"ID", &scopev1.Agent{Name: "teams/beta/widgets/w", AgentId: "w"}, "w", "beta"},
		{"NameOnly", &scopev1.Agent{Name: "teams/beta/widgets/w"}, "w", "beta"},
		{"IDOnly", &scopev1.Agent{AgentId: "w"}, "w", "acme"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			it := testKind.common(tt.r, "acme")
			if it.Name != tt.wantName || it.Team != tt.wantTeam {
				t.Errorf("got name %q team %q, want %q %q", it.Name, it.Team, tt.wantName, tt.wantTeam)
			}
			if it.SecretNames == nil {
				t.Error("got secret names nil, want [] (never null in JSON)")
			}
		})
	}
}
