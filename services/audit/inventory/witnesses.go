package inventory

import (
	"context"
	"errors"
	"sync"
	"time"

	"google.golang.org/grpc/metadata"

	"github.com/ozsecrets/oz/lib/auditchain"
	"github.com/ozsecrets/oz/lib/reqmeta"
	internalapiv1 "github.com/ozsecrets/oz/proto/gen/oz/internalapi/v1"
	"github.com/ozsecrets/oz/services/audit"
	"github.com/ozsecrets/oz/services/internal/server"
)

// witnessTimeout bounds one emitter's answer (and the connection's own
// bound, when it has one): a verification waits no longer for a service
// that does not answer, and reports its witness as not checked.
const witnessTimeout = 5 * time.Second

var _ audit.Witnesses = (*Client)(nil)

// Witnesses implements audit.Witnesses: it asks the secretstore and the
// resolver, at once, for their witness of chain (AuditWitnessService).
// Unlike the inventory's reads, these calls are the audit service's own:
// they carry no bearer token (the emitters admit the audit service's
// certificate alone), only the request id.
func (c *Client) Witnesses(ctx context.Context, chain string) []audit.EmitterWitness {
	out := make([]audit.EmitterWitness, len(c.emitters))
	md := metadata.MD{}
	if id := server.RequestID(ctx); id != "" {
		md.Set(reqmeta.RequestID, id)
	}
	ctx = metadata.NewOutgoingContext(ctx, md)
	var wg sync.WaitGroup
	for i, e := range c.emitters {
		wg.Go(func() {
			out[i] = witnessOf(ctx, e.name, e.client, chain)
		})
	}
	wg.Wait()
	return out
}

func witnessOf(ctx context.Context, name string, client internalapiv1.AuditWitnessServiceClient, chain string) audit.EmitterWitness {
	ctx, cancel := context.WithTimeout(ctx, witnessTimeout)
	defer cancel()
	resp, err := client.GetAuditWitness(ctx, &internalapiv1.GetAuditWitnessRequest{Chain: chain})
	if err != nil {
		return audit.EmitterWitness{Emitter: name, Err: err}
	}
	w := resp.GetWitness()
	if w == nil {
		return audit.EmitterWitness{Emitter: name}
	}
	if w.GetChain() != chain || w.GetSeq() < 1 || len(w.GetHash()) != auditchain.HashSize {
		return audit.EmitterWitness{Emitter: name, Err: errors.New("a malformed witness")}
	}
	return audit.EmitterWitness{Emitter: name, Head: auditchain.Head{Seq: w.GetSeq(), Hash: w.GetHash()}}
}
