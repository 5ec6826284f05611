package grpcapi

import (
	"context"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	scopev1 "github.com/ozsecrets/oz/proto/gen/oz/scope/v1"
	"github.com/ozsecrets/oz/services/internal/errs"
	"github.com/ozsecrets/oz/services/internal/runrules"
	"github.com/ozsecrets/oz/services/internal/server"
	"github.com/ozsecrets/oz/services/resolver"
	"github.com/ozsecrets/oz/services/resolver/runs"
)

// RunServer implements scopev1.RunServiceServer over runs.Service.
type RunServer struct {
	scopev1.UnimplementedRunServiceServer
	Runs *runs.Service
	// Resolutions counts ResolveRun calls by outcome (RunMetrics); nil:
	// not counted.
	Resolutions *prometheus.CounterVec
}

var _ scopev1.RunServiceServer = (*RunServer)(nil)

// RegisterRuns registers the services of run resolution, backed by rs, on
// s: AgentService, EnvironmentService and RunService, counting
// resolutions in resolutions (RunMetrics) when given. Serve them with
// Rules.
func RegisterRuns(s grpc.ServiceRegistrar, rs *runs.Service, resolutions ...*prometheus.CounterVec) {
	scopev1.RegisterAgentServiceServer(s, &AgentServer{Runs: rs})
	scopev1.RegisterEnvironmentServiceServer(s, &EnvironmentServer{Runs: rs})
	srv := &RunServer{Runs: rs}
	if len(resolutions) > 0 {
		srv.Resolutions = resolutions[0]
	}
	scopev1.RegisterRunServiceServer(s, srv)
}

// RunMetrics registers on reg, and returns, the counter of run
// resolutions by outcome: oz_run_resolutions_total{outcome="resolved" |
// "failed_strict" | "refused" (bad request, not allowed) | "error"}.
func RunMetrics(reg prometheus.Registerer) *prometheus.CounterVec {
	c := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "oz_run_resolutions_total",
		Help: "Run resolutions (ResolveRun) by outcome.",
	}, []string{"outcome"})
	for _, o := range []string{"resolved", "failed_strict", "refused", "error"} {
		c.WithLabelValues(o) // report zeros from the start
	}
	reg.MustRegister(c)
	return c
}

// countResolution counts one ResolveRun by its outcome.
func (s *RunServer) countResolution(res runs.Resolution, err error) {
	if s.Resolutions == nil {
		return
	}
	outcome := "error"
	switch {
	case err == nil && res.Run.Outcome == runs.OutcomeFailedStrict:
		outcome = "failed_strict"
	case err == nil:
		outcome = "resolved"
	default:
		switch errs.KindOf(err) {
		case errs.KindInvalid, errs.KindPermissionDenied, errs.KindUnauthenticated, errs.KindNotFound, errs.KindFailedPrecondition:
			outcome = "refused"
		}
	}
	s.Resolutions.WithLabelValues(outcome).Inc()
}

// StartRun starts a run and returns its ticket.
func (s *RunServer) StartRun(ctx context.Context, req *scopev1.StartRunRequest) (*scopev1.StartRunResponse, error) {
	return rememberWithheld(ctx, s.Runs.Directory().Store(), req, s.startRun)
}

func (s *RunServer) startRun(ctx context.Context, req *scopev1.StartRunRequest) (*scopev1.StartRunResponse, error) {
	team, err := parseTeam("parent", req.GetParent())
	if err != nil {
		return nil, err
	}
	var ttl time.Duration
	if d := req.GetTtl(); d != nil {
		if d.CheckValid() != nil {
			return nil, errs.Field("ttl", "must be a valid duration")
		}
		ttl = d.AsDuration()
	}
	st, err := s.Runs.StartRun(ctx, runs.StartRequest{
		Team:    team,
		Context: runContextFromProto(req.GetContext()),
		TTL:     ttl,
		RunID:   req.GetRunId(),
	})
	if err != nil {
		return nil, err
	}
	server.LogAttr(ctx, "run_id", st.Run.ID)
	return &scopev1.StartRunResponse{
		Ticket:     st.Ticket,
		ExpireTime: timestamp(st.Run.TicketExpire),
		RunId:      st.Run.ID,
		Run:        runProto(st.Run),
	}, nil
}

// ResolveRun redeems a start ticket: it decides, records, and returns the
// run's values sealed to the runner's key.
func (s *RunServer) ResolveRun(ctx context.Context, req *scopev1.ResolveRunRequest) (*scopev1.ResolveRunResponse, error) {
	team := runs.AnyTeam
	if req.GetParent() != "teams/"+runs.AnyTeam {
		var err error
		if team, err = parseTeam("parent", req.GetParent()); err != nil {
			return nil, errs.Field("parent", `must be "teams/{team}" or "teams/-" (the ticket's team); {team} `+resolver.IDRule)
		}
	}
	var rc *runs.RunContext
	if req.GetContext() != nil {
		c := runContextFromProto(req.GetContext())
		rc = &c
	}
	res, err := s.Runs.ResolveRun(ctx, runs.ResolveRequest{
		Team:      team,
		Ticket:    req.GetTicket(),
		Context:   rc,
		RunID:     req.GetRunId(),
		Recipient: recipientFromProto(req.GetRecipient()),
	})
	s.countResolution(res, err)
	if err != nil {
		return nil, err
	}
	server.LogAttr(ctx, "run_id", res.Run.ID)
	return &scopev1.ResolveRunResponse{Run: runProto(res.Run), Sealed: sealedProto(res.Sealed)}, nil
}

// EndRun records that a resolved run's command ended.
func (s *RunServer) EndRun(ctx context.Context, req *scopev1.EndRunRequest) (*scopev1.EndRunResponse, error) {
	return remember(ctx, s.Runs.Directory().Store(), req, s.endRun)
}

func (s *RunServer) endRun(ctx context.Context, req *scopev1.EndRunRequest) (*scopev1.EndRunResponse, error) {
	team, id, err := parseRun("name", req.GetName())
	if err != nil {
		return nil, err
	}
	end := runs.RunEnd{ExitCode: int(req.GetExitCode()), Signal: int(req.GetSignal())}
	if d := req.GetDuration(); d != nil {
		if d.CheckValid() != nil {
			return nil, errs.Field("duration", "must be a valid duration")
		}
		end.Duration = d.AsDuration()
	}
	for _, e := range req.GetEgress() {
		end.Egress = append(end.Egress, runs.EgressCount{Host: e.GetHost(), Substitutions: e.GetSubstitutions(), Denials: e.GetDenials()})
	}
	run, err := s.Runs.EndRun(ctx, team, id, end)
	if err != nil {
		return nil, err
	}
	server.LogAttr(ctx, "run_id", id)
	return &scopev1.EndRunResponse{Run: runProto(run)}, nil
}

// ReportEgressDenials records requests of a run in flight that its
// runner's egress proxy refused, as audit events. Sent again under its
// idempotency key (the client's retry after a lost answer), it is answered
// and not recorded twice.
func (s *RunServer) ReportEgressDenials(ctx context.Context, req *scopev1.ReportEgressDenialsRequest) (*scopev1.ReportEgressDenialsResponse, error) {
	return remember(ctx, s.Runs.Directory().Store(), req, s.reportEgressDenials)
}

func (s *RunServer) reportEgressDenials(ctx context.Context, req *scopev1.ReportEgressDenialsRequest) (*scopev1.ReportEgressDenialsResponse, error) {
	team, id, err := parseRun("name", req.GetName())
	if err != nil {
		return nil, err
	}
	denials := make([]runs.EgressDenial, 0, len(req.GetDenials()))
	for _, d := range req.GetDenials() {
		denials = append(denials, runs.EgressDenial{Host: d.GetHost(), SecretName: d.GetSecretName(), Reason: d.GetReason()})
	}
	if err := s.Runs.ReportEgressDenials(ctx, team, id, denials); err != nil {
		return nil, err
	}
	server.LogAttr(ctx, "run_id", id)
	return &scopev1.ReportEgressDenialsResponse{}, nil
}

// ExplainRun makes the same decision without values and says why.
func (s *RunServer) ExplainRun(ctx context.Context, req *scopev1.ExplainRunRequest) (*scopev1.ExplainRunResponse, error) {
	team, err := parseTeam("parent", req.GetParent())
	if err != nil {
		return nil, err
	}
	if req.GetContext() == nil {
		return nil, errs.Field("context", "is required")
	}
	ex, err := s.Runs.ExplainRun(ctx, team, runContextFromProto(req.GetContext()))
	if err != nil {
		return nil, err
	}
	return &scopev1.ExplainRunResponse{Explanation: explanationProto(ex)}, nil
}

// GetRun returns a run's record.
func (s *RunServer) GetRun(ctx context.Context, req *scopev1.GetRunRequest) (*scopev1.GetRunResponse, error) {
	team, id, err := parseRun("name", req.GetName())
	if err != nil {
		return nil, err
	}
	run, err := s.Runs.GetRun(ctx, team, id)
	if err != nil {
		return nil, err
	}
	return &scopev1.GetRunResponse{Run: runProto(run)}, nil
}

// ListRuns lists a team's run records, newest first.
func (s *RunServer) ListRuns(ctx context.Context, req *scopev1.ListRunsRequest) (*scopev1.ListRunsResponse, error) {
	team, err := parseTeam("parent", req.GetParent())
	if err != nil {
		return nil, err
	}
	f := runs.RunFilter{Agent: req.GetAgent(), Trigger: resolver.Trigger(req.GetTrigger()), InFlight: req.GetInFlight()}
	if f.Start, err = timeOf("start_time", req.GetStartTime()); err != nil {
		return nil, err
	}
	if f.End, err = timeOf("end_time", req.GetEndTime()); err != nil {
		return nil, err
	}
	runs, next, err := s.Runs.ListRuns(ctx, team, f, resolver.Page{Size: int(req.GetPageSize()), Token: req.GetPageToken()})
	if err != nil {
		return nil, err
	}
	resp := &scopev1.ListRunsResponse{NextPageToken: next}
	for _, r := range runs {
		resp.Runs = append(resp.Runs, runProto(r))
	}
	return resp, nil
}

// parseRun parses "teams/{team}/runs/{run}".
func parseRun(field, name string) (team, id string, err error) {
	rest, ok := strings.CutPrefix(name, "teams/")
	if ok {
		team, id, ok = strings.Cut(rest, "/runs/")
	}
	if !ok || !resolver.ValidID(team) || !resolver.ValidRunID(id) {
		return "", "", errs.Field(field, `must be "teams/{team}/runs/{run}"; {team} and {run} `+resolver.IDRule)
	}
	return team, id, nil
}

func timeOf(field string, ts *timestamppb.Timestamp) (time.Time, error) {
	if ts == nil {
		return time.Time{}, nil
	}
	if ts.CheckValid() != nil {
		return time.Time{}, errs.Field(field, "must be a valid timestamp")
	}
	return ts.AsTime(), nil
}

// Conversions. The domain's Trigger has the wire enum's numbers; the
// others are mapped one by one.

func runContextFromProto(p *scopev1.RunContext) runs.RunContext {
	rc := runs.RunContext{
		Trigger:     resolver.Trigger(p.GetTrigger()),
		User:        p.GetUser(),
		Agent:       p.GetAgent(),
		Environment: p.GetEnvironment(),
		Strict:      p.GetStrict(),
		StartToken:  p.GetStartToken(), //nolint:staticcheck // deprecated: read only to refuse it
	}
	if p.GetSecrets() != nil { // present, maybe empty
		rc.Secrets = append([]string{}, p.GetSecrets().GetNames()...)
	}
	return rc
}

// recipientFromProto is nil for no key: the domain refuses it, naming the
// field.
func recipientFromProto(p *scopev1.RecipientKey) *runs.Recipient {
	if p == nil {
		return nil
	}
	return &runs.Recipient{KEMID: p.GetKemId(), PublicKey: p.GetPublicKey()}
}

func sealedProto(s *runs.Sealed) *scopev1.SealedValues {
	if s == nil {
		return nil
	}
	return &scopev1.SealedValues{KemId: uint32(s.KEMID), KdfId: uint32(s.KDFID), AeadId: uint32(s.AEADID), Info: s.Info, Ciphertext: s.Ciphertext}
}

// runContextProto never carries the start token.
func runContextProto(rc runs.RunContext) *scopev1.RunContext {
	p := &scopev1.RunContext{
		Trigger:     scopev1.Trigger(rc.Trigger),
		User:        rc.User,
		Agent:       rc.Agent,
		Environment: rc.Environment,
		Strict:      rc.Strict,
	}
	if rc.Secrets != nil {
		p.Secrets = &scopev1.SecretNameList{Names: rc.Secrets}
	}
	return p
}

func scopeProto(s runrules.Scope) scopev1.SecretScope {
	switch s {
	case runrules.ScopeTeam:
		return scopev1.SecretScope_SECRET_SCOPE_TEAM
	case runrules.ScopePersonal:
		return scopev1.SecretScope_SECRET_SCOPE_PERSONAL
	}
	return scopev1.SecretScope_SECRET_SCOPE_UNSPECIFIED
}

func sourceProto(s runrules.AllowlistSource) scopev1.AllowlistSource {
	switch s {
	case runrules.AllowlistNone:
		return scopev1.AllowlistSource_ALLOWLIST_SOURCE_NONE
	case runrules.AllowlistRun:
		return scopev1.AllowlistSource_ALLOWLIST_SOURCE_RUN
	case runrules.AllowlistEnvironment:
		return scopev1.AllowlistSource_ALLOWLIST_SOURCE_ENVIRONMENT
	}
	return scopev1.AllowlistSource_ALLOWLIST_SOURCE_UNSPECIFIED
}

func reasonProto(r runrules.Reason) scopev1.UnresolvedReason {
	switch r {
	case runrules.NotFound:
		return scopev1.UnresolvedReason_UNRESOLVED_REASON_NOT_FOUND
	case runrules.Restricted:
		return scopev1.UnresolvedReason_UNRESOLVED_REASON_RESTRICTED
	case runrules.Reserved:
		return scopev1.UnresolvedReason_UNRESOLVED_REASON_RESERVED
	}
	return scopev1.UnresolvedReason_UNRESOLVED_REASON_UNSPECIFIED
}

func decisionProto(d runrules.Decision) scopev1.Decision {
	switch d {
	case runrules.Injected:
		return scopev1.Decision_DECISION_INJECTED
	case runrules.ExcludedNotInAllowlist:
		return scopev1.Decision_DECISION_EXCLUDED_NOT_IN_ALLOWLIST
	case runrules.ExcludedRestricted:
		return scopev1.Decision_DECISION_EXCLUDED_RESTRICTED
	case runrules.ExcludedOverridden:
		return scopev1.Decision_DECISION_EXCLUDED_OVERRIDDEN
	case runrules.ExcludedReserved:
		return scopev1.Decision_DECISION_EXCLUDED_RESERVED
	}
	return scopev1.Decision_DECISION_UNSPECIFIED
}

func outcomeProto(o runs.Outcome) scopev1.RunOutcome {
	switch o {
	case runs.OutcomeResolved:
		return scopev1.RunOutcome_RUN_OUTCOME_RESOLVED
	case runs.OutcomeFailedStrict:
		return scopev1.RunOutcome_RUN_OUTCOME_FAILED_STRICT
	}
	return scopev1.RunOutcome_RUN_OUTCOME_UNSPECIFIED
}

func unresolvedProto(us []runs.UnresolvedReference) []*scopev1.UnresolvedReference {
	var out []*scopev1.UnresolvedReference
	for _, u := range us {
		out = append(out, &scopev1.UnresolvedReference{SecretName: u.Name, Reason: reasonProto(u.Reason), Detail: u.Detail})
	}
	return out
}

func runProto(r runs.Run) *scopev1.Run {
	p := &scopev1.Run{
		Name:             r.Name(),
		RunId:            r.ID,
		Context:          runContextProto(r.Context),
		Agent:            r.Agent,
		ResolvedBy:       r.ResolvedBy,
		CreateTime:       timestamp(r.CreateTime),
		AllowlistSource:  sourceProto(r.AllowlistSource),
		Unresolved:       unresolvedProto(r.Unresolved),
		Outcome:          outcomeProto(r.Outcome),
		State:            scopev1.RunState(r.State),
		StartedBy:        r.StartedBy,
		TicketExpireTime: timestamp(r.TicketExpire),
		ResolveTime:      timestamp(r.ResolveTime),
		EndTime:          timestamp(r.EndTime),
		HoldsStaleValues: r.HoldsStaleValues,
	}
	if r.End != nil {
		p.End = &scopev1.RunEnd{ExitCode: int32(r.End.ExitCode), Signal: int32(r.End.Signal), Duration: durationpb.New(r.End.Duration)}
		for _, e := range r.End.Egress {
			p.End.Egress = append(p.End.Egress, &scopev1.EgressCount{Host: e.Host, Substitutions: e.Substitutions, Denials: e.Denials})
		}
	}
	for _, s := range r.Injected {
		in := &scopev1.InjectedSecret{
			SecretName:          s.Name,
			Scope:               scopeProto(s.Scope()),
			Owner:               s.Owner,
			ValueVersion:        s.Version,
			OverridesTeamSecret: s.OverridesTeamSecret,
			Redacted:            s.Redacted,
			ValueState:          scopev1.InjectedValueState(s.ValueState),
		}
		if !s.Redacted { // another user's personal secret: nothing of it
			in.Binding = s.Binding.Proto()
		}
		p.Injected = append(p.Injected, in)
	}
	return p
}

func explanationProto(ex runs.Explanation) *scopev1.Explanation {
	p := &scopev1.Explanation{
		Context:         runContextProto(ex.Context),
		Agent:           ex.Agent,
		AllowlistSource: sourceProto(ex.AllowlistSource),
		Allowlist:       ex.Allowlist,
		Unresolved:      unresolvedProto(ex.Unresolved),
		Notes:           ex.Notes,
		WouldFailStrict: ex.WouldFailStrict,
	}
	for _, c := range ex.Candidates {
		p.Candidates = append(p.Candidates, &scopev1.CandidateDecision{
			SecretName:   c.Name,
			Scope:        scopeProto(c.Scope()),
			Owner:        c.Owner,
			ValueVersion: c.Version,
			Decision:     decisionProto(c.Decision),
			Detail:       c.Detail,
			Binding:      c.Binding.Proto(),
		})
	}
	return p
}
