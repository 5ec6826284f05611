package secret

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/urfave/cli/v2"
	"google.golang.org/protobuf/types/known/timestamppb"

	secretsv1 "github.com/ozsecrets/oz/proto/gen/oz/secrets/v1"

	"github.com/ozsecrets/oz/cli/internal/client"
	"github.com/ozsecrets/oz/cli/internal/cmd/cmdutil"
	"github.com/ozsecrets/oz/cli/internal/iostreams"
	"github.com/ozsecrets/oz/cli/internal/timefmt"
)

// ListOptions are the inputs of `oz secret list`.
type ListOptions struct {
	IO      *iostreams.IOStreams
	Connect func(context.Context) (*client.Conn, error)
	Now     func() time.Time

	Team     bool // only team secrets
	Personal bool // only personal secrets
	Output   cmdutil.Format
}

func newListCmd(f *cmdutil.Factory) *cli.Command {
	return &cli.Command{
		Name:    "list",
		Aliases: []string{"ls"},
		Usage:   "List the secrets available to you: your teams' and your own (metadata only)",
		Description: `BOUND TO shows the hosts a secret is bound to ("-": not bound; see oz secret
create --help), with "+query" and "+body" when the placeholder is replaced
there too. The column shows when a listed secret is bound.

Examples:
   oz secret list
   oz secret list --personal
   oz secret list --team --output json | jq -r '.[].name'
   oz secret list --output json | jq -r '.[] | select(.binding) | .name'`,
		Flags: []cli.Flag{
			&cli.BoolFlag{Name: "team", Usage: "only team secrets"},
			&cli.BoolFlag{Name: "personal", Usage: "only personal secrets"},
			cmdutil.OutputFlag(),
		},
		Action: func(c *cli.Context) error {
			if _, err := cmdutil.Args(c); err != nil {
				return err
			}
			format, err := cmdutil.OutputFormat(c)
			if err != nil {
				return err
			}
			return runList(c.Context, &ListOptions{
				IO:       f.IO,
				Connect:  f.Connector(),
				Now:      f.Now,
				Team:     c.Bool("team"),
				Personal: c.Bool("personal"),
				Output:   format,
			})
		},
	}
}

// listPageSize is the page size asked of the server: its largest, so that
// 50,000 secrets take 50 round trips.
const listPageSize = 1000

// runList prints each page as it arrives, in the server's order (by name
// without regard to case, then team before personal, then team name), so
// that it holds one page at most, whatever the number of secrets.
//
// The table's columns are chosen at the first page: when it
// is the whole list, TEAM shows when more than one team does, as it
// always did; when more pages follow, TEAM shows unless --personal, since
// a later page may bring another team, and SCOPE (both scopes listed) is
// as wide as "personal".
// BOUND TO follows TEAM's rule: on the whole list, it shows when a secret
// is bound; when more pages follow, always, since a later page may bring
// one. It is the last column: a long list of hosts pushes nothing right.
// Their widths follow cmdutil.Table's rule (set by the first 100 rows).
func runList(ctx context.Context, opts *ListOptions) error {
	conn, err := opts.Connect(ctx)
	if err != nil {
		return err
	}
	defer conn.Close()

	var (
		now       = opts.Now()
		jsonOut   *cmdutil.JSONArray
		table     *cmdutil.Table
		showTeam  bool
		showBound bool
		shown     int
	)
	if opts.Output == cmdutil.FormatJSON {
		jsonOut = cmdutil.NewJSONArray(opts.IO.Out)
	}
	// --personal alone lists the caller's own secrets, not every team's
	// to keep none of them; the order is the same (by name without regard
	// to case).
	next := func(token string) (page []*secretsv1.Secret, nextToken string, err error) {
		resp, err := conn.Secrets.ListAvailableSecrets(ctx, &secretsv1.ListAvailableSecretsRequest{PageSize: listPageSize, PageToken: token})
		return resp.GetSecrets(), resp.GetNextPageToken(), err
	}
	if opts.Personal && !opts.Team {
		next = func(token string) ([]*secretsv1.Secret, string, error) {
			resp, err := conn.Secrets.ListSecrets(ctx, &secretsv1.ListSecretsRequest{Parent: "users/me", PageSize: listPageSize, PageToken: token})
			return resp.GetSecrets(), resp.GetNextPageToken(), err
		}
	}
	token := ""
	for {
		page, nextToken, err := next(token)
		if err != nil {
			return err
		}
		var items []secretItem // this page's
		for _, s := range page {
			it := newSecretItem(s)
			if opts.Team != opts.Personal && (it.Scope == "team") != opts.Team {
				continue
			}
			items = append(items, it)
		}
		last := nextToken == ""
		switch {
		case jsonOut != nil:
			for _, it := range items {
				if err := jsonOut.Add(it); err != nil {
					return err
				}
			}
			if err := jsonOut.Flush(); err != nil {
				return err
			}
		case table == nil && len(items) > 0:
			showTeam = !opts.Personal && !last || teamsIn(items) > 1
			showBound = !last || slices.ContainsFunc(items, func(it secretItem) bool { return it.Binding != nil })
			table = cmdutil.NewTable(opts.IO.Out)
			if !last && opts.Team == opts.Personal { // both scopes may come
				table.MinWidth(1, len("personal"))
			}
			if !last && showBound { // BOUND TO stays in line
				table.MinWidth(updatedColumn(showTeam), updatedWidth(opts.IO.StdoutTTY))
			}
			table.Row(listRow(showTeam, showBound, "NAME", "SCOPE", "TEAM", "LAST UPDATED", "BOUND TO")...)
			fallthrough
		case table != nil:
			for _, it := range items {
				updated := timefmt.Cell(it.updateTime, now, opts.IO.StdoutTTY)
				table.Row(listRow(showTeam, showBound, it.Name, it.Scope, cmp.Or(it.Team, "-"), updated, boundTo(it.binding))...)
			}
			if err := table.Flush(); err != nil {
				return err
			}
		}
		shown += len(items)
		if last {
			break
		}
		token = nextToken
	}
	if jsonOut != nil {
		return jsonOut.Close()
	}
	if table != nil {
		return table.Close()
	}
	if shown == 0 && opts.IO.StderrTTY {
		fmt.Fprintln(opts.IO.ErrOut, "No secrets.")
	}
	return nil
}

// listRow is a row of the table: the columns chosen, of all of them.
func listRow(showTeam, showBound bool, name, scope, team, updated, bound string) []string {
	row := []string{name, scope}
	if showTeam {
		row = append(row, team)
	}
	row = append(row, updated)
	if showBound {
		row = append(row, bound)
	}
	return row
}

// updatedColumn is the index of LAST UPDATED.
func updatedColumn(showTeam bool) int {
	if showTeam {
		return 3
	}
	return 2
}

// updatedWidth is the widest LAST UPDATED cell (timefmt.Cell) there is
// but for dates 100 years away.
func updatedWidth(tty bool) int {
	if tty {
		return len("11 months ago")
	}
	return len("2006-01-02T15:04:05Z")
}

// teamsIn counts the distinct teams of items.
func teamsIn(items []secretItem) int {
	teams := map[string]bool{}
	for _, it := range items {
		if it.Team != "" {
			teams[it.Team] = true
		}
	}
	return len(teams)
}

// secretItem is a secret's metadata as `list --output json` prints it.
type secretItem struct {
	Name           string `json:"name"`
	Scope          string `json:"scope"`
	Team           string `json:"team,omitempty"`
	Owner          string `json:"owner"`
	ResourceName   string `json:"resource_name"`
	Description    string `json:"description"`
	ValueVersion   int64  `json:"value_version"`
	CreatedAt      string `json:"created_at,omitempty"`
	UpdatedAt      string `json:"updated_at,omitempty"`
	ValueUpdatedAt string `json:"value_updated_at,omitempty"`
	CreatedBy      string `json:"created_by,omitempty"`
	UpdatedBy      string `json:"updated_by,omitempty"`
	Etag           string `json:"etag,omitempty"`
	// Binding is absent when the secret is not bound to hosts.
	Binding *bindingItem `json:"binding,omitempty"`

	updateTime time.Time
	binding    *secretsv1.HostBinding
}

// bindingItem is a secret's binding to hosts as --output json prints it.
type bindingItem struct {
	Hosts      []string `json:"hosts"`
	AllowQuery bool     `json:"allow_query"`
	AllowBody  bool     `json:"allow_body"`
}

func newSecretItem(s *secretsv1.Secret) secretItem {
	it := secretItem{
		Name:           s.GetSecretId(),
		Owner:          s.GetOwner(),
		ResourceName:   s.GetName(),
		Description:    s.GetDescription(),
		ValueVersion:   s.GetValueVersion(),
		CreatedAt:      rfc3339(s.GetCreateTime()),
		UpdatedAt:      rfc3339(s.GetUpdateTime()),
		ValueUpdatedAt: rfc3339(s.GetValueUpdateTime()),
		CreatedBy:      s.GetCreateBy(),
		UpdatedBy:      s.GetUpdateBy(),
		Etag:           s.GetEtag(),
	}
	if b := s.GetBinding(); len(b.GetHosts()) > 0 {
		it.binding = b
		it.Binding = &bindingItem{Hosts: b.GetHosts(), AllowQuery: b.GetAllowQuery(), AllowBody: b.GetAllowBody()}
	}
	if s.GetUpdateTime() != nil {
		it.updateTime = s.GetUpdateTime().AsTime()
	}
	if it.Name == "" {
		if i := strings.LastIndex(it.ResourceName, "/secrets/"); i >= 0 {
			it.Name = it.ResourceName[i+len("/secrets/"):]
		}
	}
	owner := it.Owner
	if owner == "" {
		owner, _, _ = strings.Cut(it.ResourceName, "/secrets/")
	}
	switch {
	case s.GetScope() == secretsv1.Scope_SCOPE_TEAM,
		s.GetScope() == secretsv1.Scope_SCOPE_UNSPECIFIED && strings.HasPrefix(owner, "teams/"):
		it.Scope = "team"
		it.Team = strings.TrimPrefix(owner, "teams/")
	default:
		it.Scope = "personal"
	}
	return it
}

func rfc3339(ts *timestamppb.Timestamp) string {
	if ts == nil {
		return ""
	}
	return ts.AsTime().UTC().Format(time.RFC3339Nano)
}
