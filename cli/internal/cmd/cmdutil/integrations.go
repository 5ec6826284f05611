package cmdutil

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"strings"
	"text/tabwriter"

	scopev1 "github.com/ozsecrets/oz/proto/gen/oz/scope/v1"

	"github.com/ozsecrets/oz/cli/internal/iostreams"
)

// integrationTriggers are the triggers an integration starts runs for:
// slack and linear (user-initiated, on behalf of members who allowed it),
// schedule and integration (user-less). People start cli, web and api runs
// themselves.
var integrationTriggers = []scopev1.Trigger{
	scopev1.Trigger_TRIGGER_SLACK,
	scopev1.Trigger_TRIGGER_LINEAR,
	scopev1.Trigger_TRIGGER_SCHEDULE,
	scopev1.Trigger_TRIGGER_INTEGRATION,
}

// IntegrationTriggerNames lists the values of an integration's --trigger.
func IntegrationTriggerNames() []string { return triggerNames(integrationTriggers) }

// ParseIntegrationTrigger parses an integration's --trigger: one of
// IntegrationTriggerNames. Empty or anything else is a usage error that
// lists the valid values.
func ParseIntegrationTrigger(s string) (scopev1.Trigger, error) {
	return parseTrigger(s, integrationTriggers, "; people start cli, web and api runs themselves")
}

// UserInitiated reports whether runs of trigger t carry a triggering user
// (cli, slack, linear, web, api), and so may receive that user's personal
// secrets.
func UserInitiated(t scopev1.Trigger) bool {
	switch t {
	case scopev1.Trigger_TRIGGER_CLI, scopev1.Trigger_TRIGGER_SLACK, scopev1.Trigger_TRIGGER_LINEAR,
		scopev1.Trigger_TRIGGER_WEB, scopev1.Trigger_TRIGGER_API:
		return true
	}
	return false
}

// IntegrationName is the resource name of integration id of team.
func IntegrationName(team, id string) string { return "teams/" + team + "/integrations/" + id }

// DescribeIntegration names integration id of team for people.
func DescribeIntegration(team, id string) string { return "integration " + id + " (team " + team + ")" }

// Integration is an integration as --output json prints it, in `oz
// integration list` and `oz admin integration list` alike. Allowed says
// whether the caller allowed it to start runs on their behalf.
type Integration struct {
	Name         string   `json:"name"`
	ResourceName string   `json:"resource_name"`
	Team         string   `json:"team"`
	Trigger      string   `json:"trigger"`
	Agents       []string `json:"agents"`
	Description  string   `json:"description"`
	CreatedAt    string   `json:"created_at,omitempty"`
	CreatedBy    string   `json:"created_by"`
	Allowed      bool     `json:"allowed"`
}

// NewIntegration returns in as --output json prints it.
func NewIntegration(in *scopev1.Integration, team string) Integration {
	it := Integration{
		Name:         in.GetIntegrationId(),
		ResourceName: in.GetName(),
		Team:         team,
		Trigger:      TriggerName(in.GetTrigger()),
		Agents:       append([]string{}, in.GetAgents()...),
		Description:  in.GetDescription(),
		CreatedAt:    RFC3339(in.GetCreateTime()),
		CreatedBy:    in.GetCreateBy(),
		Allowed:      in.GetAllowed(),
	}
	if owner, id, ok := strings.Cut(in.GetName(), "/integrations/"); ok {
		it.Name = cmp.Or(it.Name, id)
		it.Team = strings.TrimPrefix(owner, "teams/")
	}
	return it
}

// ListIntegrations returns every integration of team, page by page,
// sorted by id.
func ListIntegrations(ctx context.Context, c scopev1.IntegrationServiceClient, team string) ([]*scopev1.Integration, error) {
	var out []*scopev1.Integration
	req := &scopev1.ListIntegrationsRequest{Parent: "teams/" + team}
	for {
		resp, err := c.ListIntegrations(ctx, req)
		if err != nil {
			return nil, err
		}
		out = append(out, resp.GetIntegrations()...)
		if resp.GetNextPageToken() == "" || resp.GetNextPageToken() == req.GetPageToken() {
			break
		}
		req.PageToken = resp.GetNextPageToken()
	}
	slices.SortStableFunc(out, func(a, b *scopev1.Integration) int {
		return cmp.Compare(a.GetIntegrationId(), b.GetIntegrationId())
	})
	return out, nil
}

// WriteIntegrations prints list (integrations of team) as --output json
// does, or as a table under header with a row per integration (its
// columns, tab-separated); an empty table says so on a terminal.
func WriteIntegrations(io *iostreams.IOStreams, team string, list []*scopev1.Integration, format Format, header string, row func(Integration) string) error {
	if format == FormatJSON {
		items := make([]Integration, 0, len(list))
		for _, in := range list {
			items = append(items, NewIntegration(in, team))
		}
		return WriteJSON(io.Out, items)
	}
	if len(list) == 0 {
		if io.StderrTTY {
			fmt.Fprintf(io.ErrOut, "No integrations in team %s.\n", team)
		}
		return nil
	}
	tw := tabwriter.NewWriter(io.Out, 0, 8, 2, ' ', 0)
	fmt.Fprintln(tw, header)
	for _, in := range list {
		fmt.Fprintln(tw, row(NewIntegration(in, team)))
	}
	return tw.Flush()
}
