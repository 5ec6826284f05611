package ozfake

import (
	"context"

	auditv1 "github.com/ozsecrets/oz/proto/gen/oz/audit/v1"
)

// Audit is an AuditService whose methods call the func fields; an unset
// field answers Unimplemented.
type Audit struct {
	auditv1.UnimplementedAuditServiceServer
	ListEventsFunc     func(context.Context, *auditv1.ListEventsRequest) (*auditv1.ListEventsResponse, error)
	VerifyChainFunc    func(context.Context, *auditv1.VerifyChainRequest) (*auditv1.VerifyChainResponse, error)
	ExportEventsFunc   func(context.Context, *auditv1.ExportEventsRequest) (*auditv1.ExportEventsResponse, error)
	GetSecretUsageFunc func(context.Context, *auditv1.GetSecretUsageRequest) (*auditv1.GetSecretUsageResponse, error)
	ReviewSecretsFunc  func(context.Context, *auditv1.ReviewSecretsRequest) (*auditv1.ReviewSecretsResponse, error)
}

var _ auditv1.AuditServiceServer = (*Audit)(nil)

func (f *Audit) ListEvents(ctx context.Context, r *auditv1.ListEventsRequest) (*auditv1.ListEventsResponse, error) {
	if f.ListEventsFunc == nil {
		return nil, unimplemented("ListEvents")
	}
	return f.ListEventsFunc(ctx, r)
}

func (f *Audit) VerifyChain(ctx context.Context, r *auditv1.VerifyChainRequest) (*auditv1.VerifyChainResponse, error) {
	if f.VerifyChainFunc == nil {
		return nil, unimplemented("VerifyChain")
	}
	return f.VerifyChainFunc(ctx, r)
}

func (f *Audit) ExportEvents(ctx context.Context, r *auditv1.ExportEventsRequest) (*auditv1.ExportEventsResponse, error) {
	if f.ExportEventsFunc == nil {
		return nil, unimplemented("ExportEvents")
	}
	return f.ExportEventsFunc(ctx, r)
}

func (f *Audit) GetSecretUsage(ctx context.Context, r *auditv1.GetSecretUsageRequest) (*auditv1.GetSecretUsageResponse, error) {
	if f.GetSecretUsageFunc == nil {
		return nil, unimplemented("GetSecretUsage")
	}
	return f.GetSecretUsageFunc(ctx, r)
}

func (f *Audit) ReviewSecrets(ctx context.Context, r *auditv1.ReviewSecretsRequest) (*auditv1.ReviewSecretsResponse, error) {
	if f.ReviewSecretsFunc == nil {
		return nil, unimplemented("ReviewSecrets")
	}
	return f.ReviewSecretsFunc(ctx, r)
}
