package grpcapi

import (
	"context"

	"google.golang.org/protobuf/proto"

	"github.com/ozsecrets/oz/services/internal/idempotency"
	"github.com/ozsecrets/oz/services/resolver"
)

// Writes sent again (issue 15). Every write of the resolver's public
// services runs through remember, or rememberWithheld when its answer
// holds a credential: sent with an idempotency key, the same request sent
// again by the same caller gets the first answer, and nothing is written
// twice (idempotency.Handle). Two writes do not: RevokeToken, which is
// idempotent by itself (a revoked token is answered as it is, and what is
// left of its descendants revoked), and ResolveRun, whose answer is the
// run's values, sealed to the runner's key, and whose ticket is redeemed
// once.

// remember runs write(ctx, req) under req's idempotency key, keeping its
// answer.
func remember[Req, Resp proto.Message](ctx context.Context, s *resolver.Store, req Req, write func(context.Context, Req) (Resp, error)) (Resp, error) {
	return idempotency.Handle(ctx, s.Idempotency(), s.Now(), req, idempotency.KeepAnswer,
		func(ctx context.Context) (Resp, error) { return write(ctx, req) })
}

// rememberWithheld is remember for a write whose answer holds a bearer
// token or a start ticket, shown once: the key sent again is refused,
// saying so, and makes no second one.
func rememberWithheld[Req, Resp proto.Message](ctx context.Context, s *resolver.Store, req Req, write func(context.Context, Req) (Resp, error)) (Resp, error) {
	return idempotency.Handle(ctx, s.Idempotency(), s.Now(), req, idempotency.WithholdAnswer,
		func(ctx context.Context) (Resp, error) { return write(ctx, req) })
}
