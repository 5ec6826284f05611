// Package audit is the audit service's domain (DESIGN §6): the append-only,
// hash-chained event log, its storage interface, the rules every event
// obeys, and the Service behind oz.audit.v1.AuditService and
// oz.internalapi.v1.AuditIngestService.
//
// The record is the API's own oz.audit.v1.Event: the log stores exactly
// what it hashes and exports, so there is no second event type to keep in
// step with it. The hash chain (one per team, and the system chain) is in
// lib/auditchain, which the CLI shares for offline verification. Package
// kvstore lays the log's records out on the services' storage interface
// (internal/kv), on a bbolt file or on etcd; storetest is the Store's
// conformance suite; grpcapi serves the Service. The access
// review (Review) joins the log with what the secretstore and the resolver
// hold, read through the Inventory interface, which the inventory package
// implements over their gRPC APIs with the caller's own credentials.
//
// Emitting services do not call this package's Service: they write
// events into their own outbox (services/internal/outbox), in the
// transaction of the change, and a shipper delivers them. They may use the
// constants and ValidateEvent below. See docs/ARCHITECTURE.md for the
// packages around it and a secret's create followed to the log.
package audit

import (
	"context"
	"strings"
	"time"

	"github.com/ozsecrets/oz/lib/auditchain"
	auditv1 "github.com/ozsecrets/oz/proto/gen/oz/audit/v1"
)

// Actions with a meaning to the audit service itself (GetSecretUsage).
// Other actions follow the same "{resource kind}.{verb}" pattern:
// "agent.create", "environment.update", "token.revoke", "membership.delete".
const (
	ActionSecretCreate  = "secret.create"
	ActionSecretUpdate  = "secret.update"
	ActionSecretDelete  = "secret.delete"
	ActionRunResolve    = "run.resolve"
	ActionRequestDenied = "request.denied"
)

// Detail keys with a meaning to the audit service (see the Event message).
const (
	// DetailValueVersion is the value version after a secret.create or
	// secret.update.
	DetailValueVersion = "value_version"
	// DetailValueChanged is "true" on a secret.update that changed the
	// value.
	DetailValueChanged = "value_changed"
	// DetailInjectedPrefix + N is "NAME=VERSION", the value version of a
	// team secret NAME injected by a run.resolve (InjectedDetail; older
	// events: DetailInjectedPrefix + NAME is the version).
	DetailInjectedPrefix = "injected."
	// DetailInjectedPersonalCount is how many of the triggering user's
	// personal secrets a run.resolve injected. Their names are not
	// recorded: the team's chain is read by team admins, and nobody learns
	// another user's personal secrets, not even their names (DESIGN §5).
	DetailInjectedPersonalCount = "injected_personal_count"
	// DetailUnresolvedPrefix + N is "NAME=REASON", why an allowlisted NAME
	// resolved to nothing ("not_found", "restricted", "reserved";
	// UnresolvedDetail; older events: DetailUnresolvedPrefix + NAME).
	DetailUnresolvedPrefix = "unresolved."
	DetailAgent            = "agent"
	DetailTrigger          = "trigger"
	DetailRunner           = "runner"
	DetailEnvironment      = "environment"
	DetailUser             = "user"
	DetailMethod           = "method"
	DetailReason           = "reason"
	// DetailAllowlistSource is where a run.resolve's allowlist came from:
	// "run", "environment" or "none".
	DetailAllowlistSource = "allowlist_source"
	// DetailCode is the gRPC code of a request.denied
	// ("PERMISSION_DENIED", "UNAUTHENTICATED").
	DetailCode = "code"
)

// Store keeps the chains. Implementations must be safe for concurrent use,
// also by several processes on one store (replicas): they never fork a
// chain nor store an event id twice. Every method takes ctx first and
// returns its error (a canceled context may stop a read). A chain is named
// by its team id, "" for the system chain. Events handed out are the
// caller's to modify.
type Store interface {
	// Append appends events (at most MaxBatch), in the given order, each
	// to the chain of its team, with their seq, prev_hash, hash and
	// append_time (set to now) assigned by auditchain.Head.Link from the
	// chain's head. An event whose id is already stored, or repeats an
	// earlier id of the same call, is skipped: it is counted in Duplicates
	// and neither stored again nor re-chained. When Append returns nil,
	// every event is durably stored, and AppendResult.Heads holds the last
	// event appended now of each chain; when it fails, a prefix of its new
	// events (in the given order) may be stored, and none of the rest, so
	// that a retry of the same call stores exactly the rest. The events
	// passed in are not modified. The caller has validated them
	// (ValidateEvent).
	Append(ctx context.Context, events []*auditv1.Event, now time.Time) (AppendResult, error)

	// List returns a chain's events that match q.Filter, newest first
	// (seq descending), starting below q.BeforeSeq (0: at the head). It
	// stops after q.Limit matches or after examining q.ScanLimit events,
	// whichever comes first; Page.NextBeforeSeq says where to go on, 0
	// when the chain's first event was examined.
	List(ctx context.Context, q Query) (*Page, error)

	// Range returns at most max events of team's chain with seq >= from,
	// in ascending seq order; none past the head.
	Range(ctx context.Context, team string, from int64, max int) ([]*auditv1.Event, error)

	// Head returns team's chain head as stored beside the events: the
	// zero Head for a chain with no events.
	Head(ctx context.Context, team string) (auditchain.Head, error)
}

// EventReader is an optional capability of a Store: reading events by
// their place in one read, as the witnesses of a delivery are checked
// (Service.Append), rather than one Range per chain.
type EventReader interface {
	// EventsAt returns the event at each place of at, in order; nil where
	// the chain has no event at that seq.
	EventsAt(ctx context.Context, at []Place) ([]*auditv1.Event, error)
}

// Place is where an event is: its chain (by team) and seq.
type Place struct {
	Team string
	Seq  int64
}

// AppendResult counts what Append did.
type AppendResult struct {
	Appended   int
	Duplicates int
	// Heads holds, for each chain (by team) the call appended events to,
	// the last of them: the caller's new witness of the chain. Chains
	// whose events were all duplicates are not in it.
	Heads map[string]auditchain.Head
	// Unheld are the chains (by team) of the witnesses passed to
	// Service.Append that the log does not hold: it went backwards.
	// Service.Append sets it; Store.Append leaves it empty.
	Unheld []string
}

// Query selects events of one chain for Store.List.
type Query struct {
	Team      string
	Filter    Filter
	BeforeSeq int64 // only events with seq < BeforeSeq; 0: from the head
	Limit     int   // most events returned; > 0
	ScanLimit int   // most events examined; > 0
}

// Page is one page of Store.List.
type Page struct {
	Events        []*auditv1.Event
	NextBeforeSeq int64 // 0: nothing left
}

// Filter selects events; zero fields match anything.
type Filter struct {
	Start, End time.Time // Start <= event time < End
	// Actor matches the actor's name, or its last segment ("alice" for
	// "users/alice").
	Actor string
	// Action matches exactly, or as a prefix when it ends in ".*"
	// ("secret.*" matches "secret.create").
	Action   string
	Resource string
	RunID    string
	Outcome  auditv1.Outcome
}

// Match reports whether ev passes the filter.
func (f Filter) Match(ev *auditv1.Event) bool {
	if !f.Start.IsZero() || !f.End.IsZero() {
		t := ev.GetTime().AsTime()
		if !f.Start.IsZero() && t.Before(f.Start) {
			return false
		}
		if !f.End.IsZero() && !t.Before(f.End) {
			return false
		}
	}
	if f.Actor != "" {
		name := ev.GetActor().GetName()
		if name != f.Actor && name[strings.LastIndexByte(name, '/')+1:] != f.Actor {
			return false
		}
	}
	if f.Action != "" {
		if prefix, ok := strings.CutSuffix(f.Action, "*"); ok {
			if !strings.HasPrefix(ev.GetAction(), prefix) {
				return false
			}
		} else if ev.GetAction() != f.Action {
			return false
		}
	}
	if f.Resource != "" && ev.GetResource() != f.Resource {
		return false
	}
	if f.RunID != "" && ev.GetRunId() != f.RunID {
		return false
	}
	if f.Outcome != auditv1.Outcome_OUTCOME_UNSPECIFIED && ev.GetOutcome() != f.Outcome {
		return false
	}
	return true
}
