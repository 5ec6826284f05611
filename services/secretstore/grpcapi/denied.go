package grpcapi

import (
	"log/slog"

	"github.com/ozsecrets/oz/services/internal/auditevent"
	"github.com/ozsecrets/oz/services/internal/server"
	"github.com/ozsecrets/oz/services/secretstore"
)

// OnDenied returns the server.Config.OnDenied hook of the secretstore
// (auditevent.OnDenied): every request refused with PermissionDenied or
// Unauthenticated — by the access rules (RunSecretsService from another
// certificate than the resolver's), by the resolver (an unknown token)
// or by the services (team roles, owners, system admins) — becomes a
// request.denied event (secretstore.Service.RecordDenied) naming the
// secret or owner the request named, never a value.
func OnDenied(svc *secretstore.Service, log *slog.Logger) server.Denied {
	return auditevent.OnDenied(svc, log)
}
