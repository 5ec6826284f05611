package grpcapi

import (
	"context"
	"log/slog"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"

	"github.com/ozsecrets/oz/services/internal/server"
	"github.com/ozsecrets/oz/services/secretstore"
)

// deniedTimeout bounds the write of one request.denied event.
const deniedTimeout = 5 * time.Second

// OnDenied returns the server.Config.OnDenied hook of the secretstore:
// every request refused with PermissionDenied or Unauthenticated — by the
// access rules (RunSecretsService from another certificate than the
// resolver's), by the resolver (an unknown token) or by the services
// (team roles, owners, system admins) — becomes a request.denied event
// (Service.RecordDenied), naming the method, the code, the caller as far
// as it is known, the refusal's message, and the secret or owner the
// request named. Nothing else of the request is read: never a value. A
// failure to record is logged; the refusal stands either way.
func OnDenied(svc *secretstore.Service, log *slog.Logger) server.Denied {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return func(ctx context.Context, method string, req any, err error) {
		st := status.Convert(err)
		ctx, cancel := context.WithTimeout(ctx, deniedTimeout)
		defer cancel()
		r := secretstore.DeniedRequest{Method: method, Code: codeName(st.Code()), Reason: st.Message()}
		if m, ok := req.(proto.Message); ok && m != nil {
			r.Resource = requestResource(m)
		}
		if err := svc.RecordDenied(ctx, r); err != nil {
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

// requestResource returns what a request names: its name (a secret), or
// its parent (an owner) followed by "/secrets/" and its secret_id when it
// has one (CreateSecret). Only these string fields are read; the
// secretstore records the result only when it is well formed.
func requestResource(m proto.Message) string {
	msg := m.ProtoReflect()
	fields := msg.Descriptor().Fields()
	str := func(name string) string {
		fd := fields.ByName(protoreflect.Name(name))
		if fd == nil || fd.Kind() != protoreflect.StringKind || fd.IsList() {
			return ""
		}
		return msg.Get(fd).String()
	}
	if v := str("name"); v != "" {
		return v
	}
	parent := str("parent")
	if id := str("secret_id"); parent != "" && id != "" {
		return parent + "/secrets/" + id
	}
	return parent
}
