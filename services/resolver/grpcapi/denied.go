package grpcapi

import (
	"log/slog"

	"github.com/ozsecrets/oz/services/internal/auditevent"
	"github.com/ozsecrets/oz/services/internal/server"
	"github.com/ozsecrets/oz/services/resolver"
)

// OnDenied returns the server.Config.OnDenied hook of the resolver
// (auditevent.OnDenied): every request refused with PermissionDenied or
// Unauthenticated, by the access rules or by the domain, becomes a
// request.denied event in s's outbox (resolver.Store.RecordDenied).
func OnDenied(s *resolver.Store, log *slog.Logger) server.Denied {
	return auditevent.OnDenied(s, log)
}
