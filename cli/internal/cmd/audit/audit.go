// Package audit implements `oz audit`: list a team's audit events, export
// them as JSON lines, and verify the hash chain — on the server, or offline
// over an export with the same code the audit service hashes with
// (lib/auditchain). Events never hold a secret value.
package audit

import (
	"context"
	"encoding/hex"
	"time"

	"github.com/urfave/cli/v2"
	"google.golang.org/protobuf/encoding/protojson"

	auditv1 "github.com/ozsecrets/oz/proto/gen/oz/audit/v1"

	"github.com/ozsecrets/oz/cli/internal/client"
	"github.com/ozsecrets/oz/cli/internal/cmd/cmdutil"
	"github.com/ozsecrets/oz/cli/internal/exitcode"
	"github.com/ozsecrets/oz/cli/internal/iostreams"
)

// NewCmd returns the `oz audit` command group.
func NewCmd(f *cmdutil.Factory) *cli.Command {
	return &cli.Command{
		Name:  "audit",
		Usage: "Read, export and verify the audit log (team admins)",
		Description: `Every change (secrets, agent identities, environments, tokens, memberships),
every run resolution and every denied request is an audit event: who, through
which client, did what to which resource, with what outcome. Events never hold
a secret value.

Each team's events form a hash chain: every event carries the hash of the one
before it, so a changed, removed or reordered event is found by
'oz audit verify'. 'oz audit export' writes the chain as JSON lines, and
'oz audit verify --file' checks such an export offline, without the server.
Keep the head hash that verify prints: a later export must contain it.

The team is --team TEAM, else --use-team, $OZ_TEAM, the config file's team, or
your only team; --system reads the system chain (events of no team: users,
tokens, runners), for system admins. Team admins read their team's events.

Example, a team's changes of the last day, then a copy kept and checked offline:
   oz audit list --team acme --since 24h
   oz audit export --team acme -O acme-audit.jsonl
   oz audit verify --file acme-audit.jsonl`,
		Subcommands: []*cli.Command{
			newListCmd(f),
			newVerifyCmd(f),
			newExportCmd(f),
			NewUsageCmd(f),
		},
	}
}

// Deps are what every audit command needs.
type Deps struct {
	IO      *iostreams.IOStreams
	Connect func(context.Context) (*client.Conn, error)
	Now     func() time.Time
	// Team is the chosen team; empty: the caller's only team.
	Team string
	// System selects the system chain instead of a team's.
	System bool
}

// chainFlags are the chain selectors: --team, --use-team and --system.
func chainFlags() []cli.Flag {
	return append(cmdutil.TeamFlags(),
		&cli.BoolFlag{Name: "system", Usage: "the system chain (events of no team), for system admins"})
}

func depsOf(f *cmdutil.Factory, c *cli.Context) (Deps, error) {
	team, err := f.CommandTeam(c)
	if err != nil {
		return Deps{}, err
	}
	d := Deps{IO: f.IO, Connect: f.Connector(), Now: f.Now, Team: team, System: c.Bool("system")}
	if d.System && c.String(cmdutil.TeamFlag) != "" {
		return Deps{}, exitcode.Usagef("--system and --team name different chains: give one")
	}
	return d, nil
}

// connect dials the gateway and returns the chain's parent name:
// "system", or "teams/{team}".
func (d Deps) connect(ctx context.Context) (*client.Conn, string, error) {
	conn, err := d.Connect(ctx)
	if err != nil {
		return nil, "", err
	}
	if d.System {
		return conn, "system", nil
	}
	team, err := cmdutil.ResolveTeamFlag(ctx, conn.Directory, d.Team)
	if err != nil {
		_ = conn.Close()
		return nil, "", err
	}
	return conn, "teams/" + team, nil
}

// eventJSON is how --output json prints an event: protobuf's JSON mapping
// with the proto field names, as in an export.
var eventJSON = protojson.MarshalOptions{UseProtoNames: true}

func outcomeName(o auditv1.Outcome) string {
	switch o {
	case auditv1.Outcome_OUTCOME_OK:
		return "ok"
	case auditv1.Outcome_OUTCOME_DENIED:
		return "denied"
	case auditv1.Outcome_OUTCOME_FAILED:
		return "failed"
	}
	return "-"
}

// parseOutcome parses --outcome: ok, denied or failed ("" is any).
func parseOutcome(s string) (auditv1.Outcome, error) {
	switch s {
	case "":
		return auditv1.Outcome_OUTCOME_UNSPECIFIED, nil
	case "ok":
		return auditv1.Outcome_OUTCOME_OK, nil
	case "denied":
		return auditv1.Outcome_OUTCOME_DENIED, nil
	case "failed":
		return auditv1.Outcome_OUTCOME_FAILED, nil
	}
	return 0, exitcode.Usagef("--outcome: must be ok, denied or failed (got %q)", s)
}

// headJSON is a chain head for --output json.
type headJSON struct {
	Seq  int64  `json:"seq"`
	Hash string `json:"hash"` // hex
}

func newHeadJSON(seq int64, hash []byte) headJSON {
	return headJSON{Seq: seq, Hash: hex.EncodeToString(hash)}
}
