package secret

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"strings"
	"text/tabwriter"
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
		Description: `Examples:
   oz secret list
   oz secret list --personal
   oz secret list --team --output json | jq -r '.[].name'`,
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

func runList(ctx context.Context, opts *ListOptions) error {
	conn, err := opts.Connect(ctx)
	if err != nil {
		return err
	}
	defer conn.Close()

	var items []secretItem
	req := &secretsv1.ListAvailableSecretsRequest{}
	for {
		resp, err := conn.Secrets.ListAvailableSecrets(ctx, req)
		if err != nil {
			return err
		}
		for _, s := range resp.GetSecrets() {
			it := newSecretItem(s)
			if opts.Team != opts.Personal && (it.Scope == "team") != opts.Team {
				continue
			}
			items = append(items, it)
		}
		if resp.GetNextPageToken() == "" {
			break
		}
		req.PageToken = resp.GetNextPageToken()
	}
	slices.SortStableFunc(items, func(a, b secretItem) int {
		return cmp.Or(
			cmp.Compare(strings.ToUpper(a.Name), strings.ToUpper(b.Name)),
			cmp.Compare(b.Scope, a.Scope), // "team" before "personal"
			cmp.Compare(a.Team, b.Team),
		)
	})

	if opts.Output == cmdutil.FormatJSON {
		if items == nil {
			items = []secretItem{}
		}
		return cmdutil.WriteJSON(opts.IO.Out, items)
	}
	if len(items) == 0 {
		if opts.IO.StderrTTY {
			fmt.Fprintln(opts.IO.ErrOut, "No secrets.")
		}
		return nil
	}
	now := opts.Now()
	teams := map[string]bool{}
	for _, it := range items {
		if it.Team != "" {
			teams[it.Team] = true
		}
	}
	showTeam := len(teams) > 1
	tw := tabwriter.NewWriter(opts.IO.Out, 0, 8, 2, ' ', 0)
	if showTeam {
		fmt.Fprintln(tw, "NAME\tSCOPE\tTEAM\tLAST UPDATED")
	} else {
		fmt.Fprintln(tw, "NAME\tSCOPE\tLAST UPDATED")
	}
	for _, it := range items {
		updated := timefmt.Cell(it.updateTime, now, opts.IO.StdoutTTY)
		if showTeam {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", it.Name, it.Scope, cmp.Or(it.Team, "-"), updated)
		} else {
			fmt.Fprintf(tw, "%s\t%s\t%s\n", it.Name, it.Scope, updated)
		}
	}
	return tw.Flush()
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

	updateTime time.Time
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
