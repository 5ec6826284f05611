package outbox

import (
	"context"

	"google.golang.org/grpc"

	internalapiv1 "github.com/ozsecrets/oz/proto/gen/oz/internalapi/v1"
	"github.com/ozsecrets/oz/services/audit"
	"github.com/ozsecrets/oz/services/internal/auth"
)

// WitnessService is the method prefix of AuditWitnessService, for an
// emitting service's access rules: {WitnessService: WitnessRule}.
var WitnessService = "/" + internalapiv1.AuditWitnessService_ServiceDesc.ServiceName + "/"

// WitnessRule is the access rule of AuditWitnessService: the audit
// service alone, by its certificate (mutual TLS); a request carrying a
// bearer token is refused.
var WitnessRule = auth.Rule{Access: auth.Internal, Services: []string{audit.Emitter}}

// RegisterWitnesses registers AuditWitnessService over the witnesses src
// keeps (when it is Witnessed; else nothing) on r. Serve it with
// WitnessRule.
func RegisterWitnesses(r grpc.ServiceRegistrar, src Source) {
	if w, ok := src.(Witnessed); ok {
		internalapiv1.RegisterAuditWitnessServiceServer(r, &WitnessServer{src: w})
	}
}

// WitnessServer implements internalapiv1.AuditWitnessServiceServer: the
// audit service asks it, while verifying a chain, what this emitter saw
// of the chain.
type WitnessServer struct {
	internalapiv1.UnimplementedAuditWitnessServiceServer
	src Witnessed
}

var _ internalapiv1.AuditWitnessServiceServer = (*WitnessServer)(nil)

// GetAuditWitness implements internalapiv1.AuditWitnessServiceServer.
func (s *WitnessServer) GetAuditWitness(ctx context.Context, req *internalapiv1.GetAuditWitnessRequest) (*internalapiv1.GetAuditWitnessResponse, error) {
	chain := req.GetChain()
	if _, err := audit.ParseParent("chain", chain); err != nil {
		return nil, err
	}
	ws, err := s.src.Witnesses(ctx, []string{chain})
	if err != nil {
		return nil, err
	}
	resp := &internalapiv1.GetAuditWitnessResponse{}
	if w, ok := ws[chain]; ok {
		resp.Witness = witnessProto(w)
	}
	return resp, nil
}

func witnessProto(w Witness) *internalapiv1.AuditWitness {
	return &internalapiv1.AuditWitness{Chain: w.Chain, Seq: w.Seq, Hash: w.Hash}
}
