// Package inventory reads what an access review covers (audit.Inventory)
// from the services that own it, over their public gRPC APIs: secrets from
// the secretstore's SecretService, agent identities and environments from
// the resolver's AgentService and EnvironmentService. It also asks those
// two, the emitting services, for their audit witnesses (audit.Witnesses,
// witnesses.go), which VerifyChain checks the chain against.
//
// The inventory's reads call them as the caller of the request being
// served, never as the audit service: the connections present the audit
// service's certificate (mutual TLS, as between all services), and every
// call carries the caller's own bearer token, taken from the incoming
// request's metadata, so the owning services authenticate the caller and
// apply their rules to them — exactly as when the gateway forwards a
// request. The request id and client headers go along, so the services'
// logs tie the calls to the review. The witnesses are the one exception:
// they are asked as the audit service itself, by its certificate alone,
// and nothing of the caller's goes along but the request id.
package inventory

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/ozsecrets/oz/lib/reqmeta"
	internalapiv1 "github.com/ozsecrets/oz/proto/gen/oz/internalapi/v1"
	scopev1 "github.com/ozsecrets/oz/proto/gen/oz/scope/v1"
	secretsv1 "github.com/ozsecrets/oz/proto/gen/oz/secrets/v1"
	"github.com/ozsecrets/oz/services/audit"
	"github.com/ozsecrets/oz/services/internal/errs"
	"github.com/ozsecrets/oz/services/internal/server"
)

// pageSize is the page size asked of the services: their largest.
const pageSize = 1000

// maxPages bounds the pages one listing reads (a million items), so that a
// service handing out page tokens forever cannot hold a review.
const maxPages = 1000

// forwarded are the incoming metadata keys passed on to the services; the
// request id is the one the audit service gave the request
// (server.RequestID), never the raw header.
var forwarded = []string{"authorization", "x-oz-client"}

// Client is an audit.Inventory over the secretstore and the resolver,
// and their audit.Witnesses (witnesses.go).
type Client struct {
	secrets      secretsv1.SecretServiceClient
	agents       scopev1.AgentServiceClient
	environments scopev1.EnvironmentServiceClient
	emitters     []emitter
}

// emitter is an emitting service, for its audit witnesses.
type emitter struct {
	name   string
	client internalapiv1.AuditWitnessServiceClient
}

var _ audit.Inventory = (*Client)(nil)

// New returns a Client over connections to the secretstore and the
// resolver (server.Dial, with the audit service's client certificate).
func New(secretstore, resolver grpc.ClientConnInterface) *Client {
	return &Client{
		secrets:      secretsv1.NewSecretServiceClient(secretstore),
		agents:       scopev1.NewAgentServiceClient(resolver),
		environments: scopev1.NewEnvironmentServiceClient(resolver),
		emitters: []emitter{
			{"secretstore", internalapiv1.NewAuditWitnessServiceClient(secretstore)},
			{"resolver", internalapiv1.NewAuditWitnessServiceClient(resolver)},
		},
	}
}

// asCaller returns ctx with the caller's credentials as outgoing metadata.
// Without a bearer token in the incoming metadata there is nobody to act
// as: Unauthenticated, and no call is made.
func asCaller(ctx context.Context) (context.Context, error) {
	in, _ := metadata.FromIncomingContext(ctx)
	out := metadata.MD{}
	for _, k := range forwarded {
		if v := in.Get(k); len(v) > 0 {
			out.Set(k, v[0])
		}
	}
	if len(out.Get("authorization")) == 0 {
		return nil, errs.E(errs.KindUnauthenticated, "a bearer token is required")
	}
	if id := server.RequestID(ctx); id != "" {
		out.Set(reqmeta.RequestID, id)
	}
	return metadata.NewOutgoingContext(ctx, out), nil
}

// TeamSecrets implements audit.Inventory.
func (c *Client) TeamSecrets(ctx context.Context, team string) ([]audit.SecretMeta, error) {
	return c.listSecrets(ctx, "teams/"+team, "list the team's secrets")
}

// PersonalSecrets implements audit.Inventory.
func (c *Client) PersonalSecrets(ctx context.Context) ([]audit.SecretMeta, error) {
	return c.listSecrets(ctx, "users/me", "list your personal secrets")
}

func (c *Client) listSecrets(ctx context.Context, parent, what string) ([]audit.SecretMeta, error) {
	return pages(ctx, "secretstore", what, func(ctx context.Context, token string) ([]audit.SecretMeta, string, error) {
		resp, err := c.secrets.ListSecrets(ctx, &secretsv1.ListSecretsRequest{Parent: parent, PageSize: pageSize, PageToken: token})
		var out []audit.SecretMeta
		for _, s := range resp.GetSecrets() {
			out = append(out, audit.SecretMeta{
				Name:            s.GetName(),
				ID:              s.GetSecretId(),
				Personal:        s.GetScope() == secretsv1.Scope_SCOPE_PERSONAL || strings.HasPrefix(s.GetName(), "users/"),
				ValueVersion:    s.GetValueVersion(),
				CreateTime:      asTime(s.GetCreateTime()),
				ValueUpdateTime: asTime(s.GetValueUpdateTime()),
			})
		}
		return out, resp.GetNextPageToken(), err
	})
}

// Agents implements audit.Inventory.
func (c *Client) Agents(ctx context.Context, team string) ([]audit.Referrer, error) {
	return pages(ctx, "resolver", "list the team's agent identities", func(ctx context.Context, token string) ([]audit.Referrer, string, error) {
		resp, err := c.agents.ListAgents(ctx, &scopev1.ListAgentsRequest{Parent: "teams/" + team, PageSize: pageSize, PageToken: token})
		var out []audit.Referrer
		for _, a := range resp.GetAgents() {
			out = append(out, audit.Referrer{Name: a.GetName(), SecretNames: a.GetSecretNames()})
		}
		return out, resp.GetNextPageToken(), err
	})
}

// Environments implements audit.Inventory.
func (c *Client) Environments(ctx context.Context, team string) ([]audit.Referrer, error) {
	return pages(ctx, "resolver", "list the team's environments", func(ctx context.Context, token string) ([]audit.Referrer, string, error) {
		resp, err := c.environments.ListEnvironments(ctx, &scopev1.ListEnvironmentsRequest{Parent: "teams/" + team, PageSize: pageSize, PageToken: token})
		var out []audit.Referrer
		for _, e := range resp.GetEnvironments() {
			out = append(out, audit.Referrer{Name: e.GetName(), SecretNames: e.GetSecretNames()})
		}
		return out, resp.GetNextPageToken(), err
	})
}

// pages lists everything a paged List call returns, as the caller (the
// bearer token of ctx's incoming request), page by page: list reads the
// page of token and returns its items and the next token. service and
// what name the call in errors. More than maxPages pages is
// ResourceExhausted rather than an unbounded read.
func pages[T any](ctx context.Context, service, what string, list func(ctx context.Context, token string) ([]T, string, error)) ([]T, error) {
	ctx, err := asCaller(ctx)
	if err != nil {
		return nil, err
	}
	var out []T
	token := ""
	for range maxPages {
		items, next, err := list(ctx, token)
		if err != nil {
			return nil, downstream(service, what, err)
		}
		out = append(out, items...)
		if next == "" {
			return out, nil
		}
		token = next
	}
	return nil, errs.E(errs.KindResourceExhausted, "%s: more than %d pages", what, maxPages)
}

// downstream turns a service's gRPC error into a kinded one that keeps its
// code and says what was being done: a refusal stays PermissionDenied, an
// unreachable service is Unavailable. Anything else is Internal.
func downstream(service, what string, err error) error {
	var e *errs.Error
	if !errors.As(errs.FromStatus(err), &e) {
		return fmt.Errorf("%s: %s: %w", service, what, err)
	}
	if e.Kind == errs.KindUnavailable {
		// The cause (an address, a dial error) is for the log only.
		return &errs.Error{Kind: e.Kind, Message: what + ": the " + service + " is unavailable", Err: err}
	}
	return errs.E(e.Kind, "%s: %s", what, e.Message)
}

func asTime(ts *timestamppb.Timestamp) time.Time {
	if ts == nil {
		return time.Time{}
	}
	return ts.AsTime()
}
