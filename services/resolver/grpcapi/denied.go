package grpcapi

import (
	"context"
	"log/slog"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"

	internalapiv1 "github.com/ozsecrets/oz/proto/gen/oz/internalapi/v1"
	"github.com/ozsecrets/oz/services/internal/server"
	"github.com/ozsecrets/oz/services/resolver"
)

// deniedTimeout bounds the write of one request.denied event.
const deniedTimeout = 5 * time.Second

// OnDenied returns the server.Config.OnDenied hook of the resolver: every
// request refused with PermissionDenied or Unauthenticated, by the access
// rules or by the domain, becomes a request.denied event in s's outbox
// (resolver.Store.RecordDenied), naming the method, the code, the caller as far
// as it is known, the refusal's message, and the resource the request
// named (its team's chain, when that team exists).
//
// AuthService.Authenticate answering Unauthenticated is not recorded: it
// is the answer to the service that asked, which refused its own caller
// and records that refusal itself. A failure to record is logged; the
// refusal stands either way.
func OnDenied(s *resolver.Store, log *slog.Logger) server.Denied {
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
		r := resolver.DeniedRequest{Method: method, Code: codeName(st.Code()), Reason: st.Message()}
		if dr, ok := server.DeniedResourceFrom(ctx); ok {
			r.Resource, r.RunID = dr.Resource, dr.RunID
		} else if m, ok := req.(proto.Message); ok && m != nil {
			r.Resource, r.RunID = requestResource(m)
		}
		if err := s.RecordDenied(ctx, r); err != nil {
			log.ErrorContext(ctx, "audit: a refused request could not be recorded", "method", method, "err", err.Error())
		}
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

// requestResource returns the resource a request names — its name,
// parent or principal field, else "teams/", "users/" or "runners/" and
// its team_id, user_id or runner_id — and its run_id, as given (the
// Directory records only well-formed names).
func requestResource(m proto.Message) (resource, runID string) {
	msg := m.ProtoReflect()
	fields := msg.Descriptor().Fields()
	str := func(name string) string {
		fd := fields.ByName(protoreflect.Name(name))
		if fd == nil || fd.Kind() != protoreflect.StringKind || fd.IsList() {
			return ""
		}
		return msg.Get(fd).String()
	}
	for _, f := range []string{"name", "parent", "principal"} {
		if v := str(f); v != "" {
			return v, str("run_id")
		}
	}
	for _, f := range []struct{ field, prefix string }{{"team_id", "teams/"}, {"user_id", "users/"}, {"runner_id", "runners/"}} {
		if v := str(f.field); v != "" {
			return f.prefix + v, str("run_id")
		}
	}
	return "", str("run_id")
}
