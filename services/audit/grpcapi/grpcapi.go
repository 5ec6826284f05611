// Package grpcapi serves oz.audit.v1.AuditService (through the gateway,
// with a bearer token) and the internal oz.internalapi.v1.AuditIngestService
// (mutual TLS only) over the audit.Service. It translates requests and
// leaves errors as errs kinds for the server plumbing; requests the Service
// denies are themselves recorded as request.denied events.
package grpcapi

import (
	"context"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/ozsecrets/oz/lib/auditchain"
	auditv1 "github.com/ozsecrets/oz/proto/gen/oz/audit/v1"
	internalapiv1 "github.com/ozsecrets/oz/proto/gen/oz/internalapi/v1"
	"github.com/ozsecrets/oz/services/audit"
	"github.com/ozsecrets/oz/services/internal/auditevent"
	"github.com/ozsecrets/oz/services/internal/auth"
	"github.com/ozsecrets/oz/services/internal/errs"
	"github.com/ozsecrets/oz/services/internal/server"
)

// IngestServices are the services that may append events: those that
// make changes and record them (DESIGN §6). The gateway makes none, so it
// emits none, and is not one of them: a relay that could append would
// make its certificate a key to write any team's history. Each appends
// only events it emitted (audit.Service.Append).
var IngestServices = []string{"secretstore", "resolver"}

// Rules are the access rules of both services: AuditService needs a
// bearer token (the Service checks team roles); AuditIngestService admits
// IngestServices by certificate.
var Rules = auth.Rules{
	"/" + auditv1.AuditService_ServiceDesc.ServiceName + "/":             {Access: auth.Token},
	"/" + internalapiv1.AuditIngestService_ServiceDesc.ServiceName + "/": {Access: auth.Internal, Services: IngestServices},
}

// Register registers AuditService and AuditIngestService over svc on r.
func Register(r grpc.ServiceRegistrar, svc *audit.Service) {
	auditv1.RegisterAuditServiceServer(r, &Server{svc: svc})
	internalapiv1.RegisterAuditIngestServiceServer(r, &Ingest{svc: svc})
}

// Server implements auditv1.AuditServiceServer.
type Server struct {
	auditv1.UnimplementedAuditServiceServer
	svc *audit.Service
}

var _ auditv1.AuditServiceServer = (*Server)(nil)

// ListEvents implements auditv1.AuditServiceServer.
func (s *Server) ListEvents(ctx context.Context, req *auditv1.ListEventsRequest) (*auditv1.ListEventsResponse, error) {
	f := audit.Filter{
		Actor:    req.GetActor(),
		Action:   req.GetAction(),
		Resource: req.GetResource(),
		RunID:    req.GetRunId(),
		Outcome:  req.GetOutcome(),
	}
	var err error
	if f.Start, err = optionalTime("start_time", req.GetStartTime()); err != nil {
		return nil, err
	}
	if f.End, err = optionalTime("end_time", req.GetEndTime()); err != nil {
		return nil, err
	}
	page, err := s.svc.List(ctx, auth.PrincipalFrom(ctx), audit.ListRequest{
		Parent:    req.GetParent(),
		Filter:    f,
		PageSize:  int(req.GetPageSize()),
		PageToken: req.GetPageToken(),
	})
	if err != nil {
		return nil, err
	}
	return &auditv1.ListEventsResponse{Events: page.Events, NextPageToken: page.NextPageToken}, nil
}

// VerifyChain implements auditv1.AuditServiceServer.
func (s *Server) VerifyChain(ctx context.Context, req *auditv1.VerifyChainRequest) (*auditv1.VerifyChainResponse, error) {
	res, err := s.svc.Verify(ctx, auth.PrincipalFrom(ctx), req.GetParent())
	if err != nil {
		return nil, err
	}
	out := &auditv1.VerifyChainResponse{
		Valid:          res.Valid,
		VerifiedEvents: res.Verified,
		Head:           headProto(req.GetParent(), res.Head),
	}
	if b := res.Break; b != nil {
		out.FirstBreak = &auditv1.ChainBreak{Seq: b.Seq, EventId: b.EventID, Reason: b.Reason}
	}
	for _, w := range res.Witnesses {
		out.Witnesses = append(out.Witnesses, &auditv1.ChainWitness{
			Emitter: w.Emitter, Seq: w.Head.Seq, Hash: w.Head.Hash, State: w.State, Reason: w.Reason,
		})
	}
	return out, nil
}

// ExportEvents implements auditv1.AuditServiceServer.
func (s *Server) ExportEvents(ctx context.Context, req *auditv1.ExportEventsRequest) (*auditv1.ExportEventsResponse, error) {
	page, err := s.svc.Export(ctx, auth.PrincipalFrom(ctx), req.GetParent(), int(req.GetPageSize()), req.GetPageToken())
	if err != nil {
		return nil, err
	}
	return &auditv1.ExportEventsResponse{
		Events:        page.Events,
		NextPageToken: page.NextPageToken,
		Head:          headProto(req.GetParent(), page.Head),
	}, nil
}

// GetSecretUsage implements auditv1.AuditServiceServer.
func (s *Server) GetSecretUsage(ctx context.Context, req *auditv1.GetSecretUsageRequest) (*auditv1.GetSecretUsageResponse, error) {
	u, err := s.svc.SecretUsage(ctx, auth.PrincipalFrom(ctx), audit.UsageRequest{
		Name:        req.GetName(),
		AllVersions: req.GetAllVersions(),
		MaxRuns:     int(req.GetMaxRuns()),
	})
	if err != nil {
		return nil, err
	}
	return &auditv1.GetSecretUsageResponse{Usage: u}, nil
}

// ReviewSecrets implements auditv1.AuditServiceServer. The Service reads
// the inventory through an audit.Inventory that forwards the caller's
// bearer token from ctx's incoming metadata (services/audit/inventory).
func (s *Server) ReviewSecrets(ctx context.Context, req *auditv1.ReviewSecretsRequest) (*auditv1.ReviewSecretsResponse, error) {
	resp, err := s.svc.Review(ctx, auth.PrincipalFrom(ctx), audit.ReviewRequest{
		Parent:     req.GetParent(),
		StaleDays:  int(req.GetStaleDays()),
		UnusedDays: int(req.GetUnusedDays()),
	})
	if err != nil {
		return nil, err
	}
	return resp, nil
}

// OnDenied returns the server.Config.OnDenied hook of the audit service
// (auditevent.OnDenied): every request it refuses with PermissionDenied
// or Unauthenticated, by the access rules or by the Service, is a
// request.denied event appended to its own log
// (audit.Service.RecordDenied), on the chain of the team the request
// named when that team is known.
func OnDenied(svc *audit.Service, log *slog.Logger) server.Denied {
	return auditevent.OnDenied(svc, log)
}

func headProto(parent string, h auditchain.Head) *auditv1.ChainHead {
	return &auditv1.ChainHead{Chain: parent, Seq: h.Seq, Hash: h.Hash}
}

func optionalTime(field string, ts *timestamppb.Timestamp) (t time.Time, err error) {
	if ts == nil {
		return t, nil
	}
	if err := ts.CheckValid(); err != nil {
		return t, errs.Field(field, "is not a valid timestamp")
	}
	return ts.AsTime(), nil
}

// Ingest implements internalapiv1.AuditIngestServiceServer.
type Ingest struct {
	internalapiv1.UnimplementedAuditIngestServiceServer
	svc *audit.Service
}

var _ internalapiv1.AuditIngestServiceServer = (*Ingest)(nil)

// AppendEvents implements internalapiv1.AuditIngestServiceServer.
func (s *Ingest) AppendEvents(ctx context.Context, req *internalapiv1.AppendEventsRequest) (*internalapiv1.AppendEventsResponse, error) {
	ws := make([]audit.Witness, len(req.GetWitnesses()))
	for i, w := range req.GetWitnesses() {
		team, err := audit.ParseParent(fmt.Sprintf("witnesses[%d].chain", i), w.GetChain())
		if err != nil {
			return nil, err
		}
		ws[i] = audit.Witness{Team: team, Head: auditchain.Head{Seq: w.GetSeq(), Hash: w.GetHash()}}
	}
	res, err := s.svc.Append(ctx, auth.ServiceFrom(ctx), req.GetEvents(), ws...)
	if err != nil {
		return nil, err
	}
	out := &internalapiv1.AppendEventsResponse{Appended: int32(res.Appended), Duplicates: int32(res.Duplicates)}
	for _, team := range slices.Sorted(maps.Keys(res.Heads)) {
		h := res.Heads[team]
		out.Heads = append(out.Heads, &internalapiv1.AuditWitness{Chain: auditchain.Name(team), Seq: h.Seq, Hash: h.Hash})
	}
	for _, team := range res.Unheld {
		out.WitnessFailures = append(out.WitnessFailures, auditchain.Name(team))
	}
	return out, nil
}
