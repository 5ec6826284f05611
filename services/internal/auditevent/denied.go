package auditevent

import (
	"context"
	"log/slog"
	"regexp"
	"strconv"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/known/timestamppb"

	auditv1 "github.com/ozsecrets/oz/proto/gen/oz/audit/v1"
	internalapiv1 "github.com/ozsecrets/oz/proto/gen/oz/internalapi/v1"
	"github.com/ozsecrets/oz/services/audit"
	"github.com/ozsecrets/oz/services/internal/auth"
	"github.com/ozsecrets/oz/services/internal/server"
)

// Recording refused requests: one hook, OnDenied, for every service.

// DetailPeerService is, on a request.denied of an unauthenticated
// request, the service that relayed it (the gateway): who sent it is
// unknown, and the relay is not the actor.
const DetailPeerService = "peer_service"

// Details of a request.denied beyond the method, code and reason.
const (
	// DetailSource is the source address of the refused request: the
	// address the gateway saw it come from, for a request it relayed;
	// else the caller's (auth.RequestSource).
	DetailSource = "source"
	// DetailCount is, on the event of refusals counted together (those of
	// requests without a valid credential, server.Config.DeniedInterval),
	// how many requests it stands for; DetailFirstTime and DetailLastTime
	// (RFC 3339, UTC) when the first and the last of them came. The
	// event's time is the last one's. Such an event has no actor, request
	// id or resource, and is on the system chain.
	DetailCount     = "count"
	DetailFirstTime = "first_time"
	DetailLastTime  = "last_time"
)

// MaxReasonLength bounds the refusal message a request.denied records.
const MaxReasonLength = 1024

// deniedTimeout bounds the record of one request.denied event.
const deniedTimeout = 5 * time.Second

// Recorder is how a service records the requests it refuses: its clock,
// and where it keeps its events.
type Recorder interface {
	// Now is the service's clock: the time of the events it emits.
	Now() time.Time
	// RecordDenied completes ev — a request.denied event with its time,
	// actor, outcome, request id and details set — with what the request
	// was about, and writes it: into the service's outbox, or, for the
	// audit service, into its log. resource and runID are what the
	// request (or its handler, server.AuditResource) named, unchecked:
	// they may hold anything a client sent, a pasted token too, and are
	// recorded only when well formed by the service's rules. The team
	// (the chain) is one the service knows to exist — the caller's, or
	// one it holds records of — else "" (the system chain), so that a
	// refused request cannot make the audit service start chains for
	// names it made up; a personal secret's refusal is on the system
	// chain, never a team's. The caller is auth.PrincipalFrom(ctx).
	RecordDenied(ctx context.Context, ev *auditv1.Event, resource, runID string) error
}

// OnDenied returns the server.Config.OnDenied hook of a service: every
// request refused with PermissionDenied or Unauthenticated, by the access
// rules or by the domain, becomes a request.denied event (Denied) that
// rec records, naming the method, the code, the caller as far as it is
// known, the source address, the refusal's message and what the request
// named (RequestResource; never when it holds something of a token's
// shape). Nothing else of the request is read: never a value nor a token.
// Refusals of requests without a valid credential come counted
// (server.Config.DeniedInterval): one event per count, with no resource,
// on the system chain.
//
// AuthService.Authenticate answering Unauthenticated is not recorded: it
// is the resolver's answer to the service that asked, which refused its
// own caller and records that refusal itself. A failure to record is
// logged; the refusal stands either way.
func OnDenied(rec Recorder, log *slog.Logger) server.Denied {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return func(ctx context.Context, method string, req any, err error) {
		st := status.Convert(err)
		if method == internalapiv1.AuthService_Authenticate_FullMethodName && st.Code() == codes.Unauthenticated {
			return
		}
		ctx, cancel := context.WithTimeout(ctx, deniedTimeout)
		defer cancel()
		named, ok := server.DeniedResourceFrom(ctx)
		if !ok {
			named = RequestResource(req)
		}
		if holdsCredential(named.Resource) {
			named.Resource = ""
		}
		if holdsCredential(named.RunID) {
			named.RunID = ""
		}
		ev := Denied(ctx, rec.Now(), method, st)
		if err := rec.RecordDenied(ctx, ev, named.Resource, named.RunID); err != nil {
			log.ErrorContext(ctx, "audit: a refused request could not be recorded", "method", method, "err", err.Error())
		}
	}
}

// credentialRE matches the shape of a bearer token or a start ticket
// ("oz_" or "ozt_", a 16-hex-digit id, "_", the secret).
var credentialRE = regexp.MustCompile(`oz[a-z]*_[0-9a-f]{16}_`)

// holdsCredential reports whether s holds something of a bearer token's
// or a start ticket's shape: a client may paste one where a name belongs,
// and some are well-formed secret names too. Whatever a service's rules
// make of it, such a name is never handed to it for recording.
func holdsCredential(s string) bool { return credentialRE.MatchString(s) }

// Denied returns the request.denied event of the request of ctx, refused
// with st at now, without its resource, team and run id (the service's
// to set, Recorder). The actor is the caller of ctx (Actor); an
// unauthenticated request relayed by a service (the gateway) has no known
// actor, and the relay is recorded as DetailPeerService instead. The
// details are the method, the code ("PERMISSION_DENIED",
// "UNAUTHENTICATED"), the refusal's message, which is the one the caller
// received and never holds a token, and the source address
// (DetailSource); for refusals counted together (server.DeniedCountFrom),
// the count and the first and last times, and the time is the last's.
func Denied(ctx context.Context, now time.Time, method string, st *status.Status) *auditv1.Event {
	details := map[string]string{
		audit.DetailMethod: Clean(method, audit.MaxNameLength),
		audit.DetailCode:   Clean(codeName(st.Code()), audit.MaxShortLength),
		audit.DetailReason: Clean(st.Message(), MaxReasonLength),
	}
	if src := Clean(auth.SourceFrom(ctx), audit.MaxShortLength); src != "" {
		details[DetailSource] = src
	}
	if n, ok := server.DeniedCountFrom(ctx); ok {
		details[DetailCount] = strconv.FormatInt(n.Count, 10)
		details[DetailFirstTime] = n.First.UTC().Format(time.RFC3339Nano)
		details[DetailLastTime] = n.Last.UTC().Format(time.RFC3339Nano)
		now = n.Last
	}
	actor := Actor(ctx, nil)
	if auth.PrincipalFrom(ctx) == nil && st.Code() == codes.Unauthenticated && actor.GetKind() == auditv1.ActorKind_ACTOR_KIND_SERVICE {
		details[DetailPeerService] = actor.GetName()
		actor.Kind, actor.Name = auditv1.ActorKind_ACTOR_KIND_UNSPECIFIED, ""
	}
	return &auditv1.Event{
		Time:      timestamppb.New(now),
		Actor:     actor,
		Action:    audit.ActionRequestDenied,
		Outcome:   auditv1.Outcome_OUTCOME_DENIED,
		RequestId: RequestID(ctx),
		Details:   details,
	}
}

func codeName(c codes.Code) string {
	switch c {
	case codes.PermissionDenied:
		return "PERMISSION_DENIED"
	case codes.Unauthenticated:
		return "UNAUTHENTICATED"
	}
	return c.String()
}

// RequestResource returns what a request message names, unchecked: its
// name, else its parent (followed by "/secrets/" and its secret_id when
// it has one: CreateSecret), else its principal, else "teams/", "users/"
// or "runners/" and its team_id, user_id or runner_id; and its run_id.
// Only these top-level string fields are read. req may be nil (streams)
// or not a message: nothing is named then.
func RequestResource(req any) server.DeniedResource {
	m, ok := req.(proto.Message)
	if !ok || m == nil {
		return server.DeniedResource{}
	}
	msg := m.ProtoReflect()
	fields := msg.Descriptor().Fields()
	str := func(name string) string {
		fd := fields.ByName(protoreflect.Name(name))
		if fd == nil || fd.Kind() != protoreflect.StringKind || fd.IsList() {
			return ""
		}
		return msg.Get(fd).String()
	}
	r := server.DeniedResource{RunID: str("run_id")}
	if r.Resource = str("name"); r.Resource != "" {
		return r
	}
	if parent := str("parent"); parent != "" {
		r.Resource = parent
		if id := str("secret_id"); id != "" {
			r.Resource += "/secrets/" + id
		}
		return r
	}
	if r.Resource = str("principal"); r.Resource != "" {
		return r
	}
	for _, f := range []struct{ field, prefix string }{{"team_id", "teams/"}, {"user_id", "users/"}, {"runner_id", "runners/"}} {
		if v := str(f.field); v != "" {
			r.Resource = f.prefix + v
			return r
		}
	}
	return r
}
