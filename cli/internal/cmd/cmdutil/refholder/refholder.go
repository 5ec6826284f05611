// Package refholder builds the commands of a team resource that holds a
// description and a list of secret references: agent identities (oz agent)
// and environments (oz environment). Both get create, update, list, get and
// delete with the same flags, checks, output and exit codes; a Kind says
// what differs: names and help texts, fields of their own, the JSON item,
// the table rows, and the RPCs.
package refholder

import (
	"cmp"
	"context"
	"strings"

	"github.com/urfave/cli/v2"
	"google.golang.org/protobuf/types/known/fieldmaskpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/ozsecrets/oz/cli/internal/client"
	"github.com/ozsecrets/oz/cli/internal/cmd/cmdutil"
)

// Resource is what the commands read of a holder: getters its API message
// has.
type Resource interface {
	GetName() string // "teams/{team}/{collection}/{id}"
	GetDescription() string
	GetSecretNames() []string
	GetCreateTime() *timestamppb.Timestamp
	GetUpdateTime() *timestamppb.Timestamp
	GetEtag() string
}

// Kind describes one kind of holder R to the commands; I is its item as
// --output json prints it.
type Kind[R Resource, I any] struct {
	Noun       string // "agent identity": "Created agent identity deployer (team acme)"
	Plural     string // "agent identities": "No agent identities."
	Short      string // "identity": "what the identity is for", "the identity's etag"
	Collection string // "agents": its resource names are teams/{team}/agents/{id}
	// DeleteAlso is what else a delete does, for its prompt: " and revoke
	// its tokens"; empty for nothing.
	DeleteAlso string
	Help       Help

	// Fields are what create sets and update changes besides the
	// description, in the order of update masks and messages.
	Fields []Field

	// ID is the id r reports (empty: taken from its resource name).
	ID func(r R) string
	// Item is r as --output json prints it, from its common part.
	Item func(common Item, r R) I
	// ListHeader and Row are the list table: its header and an item's
	// row, columns tab-separated.
	ListHeader string
	Row        func(I) string
	// Details are the rows of get's table between TEAM and CREATED.
	Details func(I, R) []Detail

	// The RPCs. List returns a page and the next page's token.
	Create func(context.Context, *client.Conn, CreateRequest) (R, error)
	Update func(context.Context, *client.Conn, UpdateRequest) (R, error)
	Get    func(ctx context.Context, conn *client.Conn, name string) (R, error)
	List   func(ctx context.Context, conn *client.Conn, parent, pageToken string) ([]R, string, error)
	Delete func(ctx context.Context, conn *client.Conn, name, etag string) error
}

// Help is the help text of a kind's commands; flag usages name the
// NAME of a secret in backquotes.
type Help struct {
	Create, Update, List, Get, Delete Text

	SecretFlag       string // create's --secret
	AddSecretFlag    string // update's --add-secret
	RemoveSecretFlag string // update's --remove-secret
}

// Text is a command's Usage and Description.
type Text struct{ Usage, Description string }

// Field is a text attribute of a holder beyond its description: a flag of
// create and of update, and a path of update masks.
type Field struct {
	Flag        string // "display-name"
	Path        string // "display_name"
	CreateUsage string
	UpdateUsage string
	// AfterSecrets puts the flag after the secret flags in --help.
	AfterSecrets bool
	// Check, when set, refuses a value given (a usage error) before
	// anything is sent.
	Check func(string) error
}

// Values are the Fields given on a command line, by flag; a field not
// given is absent.
type Values map[string]string

// CreateRequest is what create asks for.
type CreateRequest struct {
	Parent      string // "teams/{team}"
	ID          string
	Description string
	Secrets     []string
	Fields      Values
}

// UpdateRequest is what update asks for: the description (empty unless
// given) and the Fields given, with a mask naming them, nil when none
// (the server then changes only what is non-empty); the added and removed
// names apply either way.
type UpdateRequest struct {
	Name        string
	Description string
	Fields      Values
	Add, Remove []string
	Etag        string
	Mask        *fieldmaskpb.FieldMask
}

// Item is a holder as --output json prints it, unless its Kind adds
// fields of its own.
type Item struct {
	Name         string   `json:"name"`
	ResourceName string   `json:"resource_name"`
	Team         string   `json:"team"`
	Description  string   `json:"description"`
	SecretNames  []string `json:"secret_names"`
	CreatedAt    string   `json:"created_at,omitempty"`
	UpdatedAt    string   `json:"updated_at,omitempty"`
	Etag         string   `json:"etag,omitempty"`
}

// Detail is a row of get's table.
type Detail struct{ Label, Value string }

// Commands returns create, update, list, get and delete.
func (k *Kind[R, I]) Commands(f *cmdutil.Factory) []*cli.Command {
	return []*cli.Command{k.createCmd(f), k.updateCmd(f), k.listCmd(f), k.getCmd(f), k.deleteCmd(f)}
}

// descriptionFlag is the flag of the description.
const descriptionFlag = "description"

func (k *Kind[R, I]) name(team, id string) string {
	return "teams/" + team + "/" + k.Collection + "/" + id
}

func (k *Kind[R, I]) describe(team, id string) string {
	return k.Noun + " " + id + " (team " + team + ")"
}

// common returns the part of r's item that every kind prints.
func (k *Kind[R, I]) common(r R, team string) Item {
	it := Item{
		Name:         k.ID(r),
		ResourceName: r.GetName(),
		Team:         team,
		Description:  r.GetDescription(),
		SecretNames:  append([]string{}, r.GetSecretNames()...),
		CreatedAt:    cmdutil.RFC3339(r.GetCreateTime()),
		UpdatedAt:    cmdutil.RFC3339(r.GetUpdateTime()),
		Etag:         r.GetEtag(),
	}
	if owner, id, ok := strings.Cut(r.GetName(), "/"+k.Collection+"/"); ok {
		it.Name = cmp.Or(it.Name, id)
		it.Team = strings.TrimPrefix(owner, "teams/")
	}
	return it
}

func (k *Kind[R, I]) item(r R, team string) I { return k.Item(k.common(r, team), r) }

// editFlags are the flags of create (update false) or of update that say
// what to set: the description (its usage descUsage), the Fields, and
// secretFlags, the Fields with AfterSecrets after them.
func (k *Kind[R, I]) editFlags(update bool, descUsage string, secretFlags ...cli.Flag) []cli.Flag {
	out := []cli.Flag{&cli.StringFlag{Name: descriptionFlag, Aliases: []string{"d"}, Usage: descUsage}}
	for _, after := range []bool{false, true} {
		if after {
			out = append(out, secretFlags...)
		}
		for _, fd := range k.Fields {
			if fd.AfterSecrets != after {
				continue
			}
			usage := fd.CreateUsage
			if update {
				usage = fd.UpdateUsage
			}
			out = append(out, &cli.StringFlag{Name: fd.Flag, Usage: usage})
		}
	}
	return out
}

// editInput is what create and update read first from their command
// line, in this order: NAME, --output, the Fields given (each checked),
// and the team.
type editInput struct {
	cmdutil.TeamDeps
	ID     string
	Output cmdutil.Format
	Fields Values
}

func (k *Kind[R, I]) readEditInput(f *cmdutil.Factory, c *cli.Context) (editInput, error) {
	args, err := cmdutil.Args(c, "NAME")
	if err != nil {
		return editInput{}, err
	}
	in := editInput{ID: args[0], Fields: Values{}}
	if in.Output, err = cmdutil.OutputFormat(c); err != nil {
		return editInput{}, err
	}
	for _, fd := range k.Fields {
		if !c.IsSet(fd.Flag) {
			continue
		}
		if fd.Check != nil {
			if err := fd.Check(c.String(fd.Flag)); err != nil {
				return editInput{}, err
			}
		}
		in.Fields[fd.Flag] = c.String(fd.Flag)
	}
	if in.TeamDeps, err = f.TeamDeps(c); err != nil {
		return editInput{}, err
	}
	return in, nil
}

func etagFlag(verb, short string) cli.Flag {
	return &cli.StringFlag{Name: "etag", Usage: verb + " only if the " + short + "'s etag is still `ETAG`"}
}

// flags returns the flags of a command: own, then --output when it has
// it, then the team flags.
func flags(output bool, own ...cli.Flag) []cli.Flag {
	if output {
		own = append(own, cmdutil.OutputFlag())
	}
	return append(own, cmdutil.TeamFlags()...)
}
