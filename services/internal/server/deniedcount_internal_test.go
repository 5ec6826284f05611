package server

import (
	"context"
	"fmt"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/ozsecrets/oz/services/internal/auth"
)

// TestDeniedCountBounded: however many sources send refused requests in
// one interval, at most MaxDeniedKeys counts (and one for the rest,
// OtherSources) are told, and every refusal is in one of them.
func TestDeniedCountBounded(t *testing.T) {
	var told int
	var total int64
	var other int64
	c := newDeniedCounter(func(ctx context.Context, _ string, _ any, _ error) {
		n, _ := DeniedCountFrom(ctx)
		told++
		total += n.Count
		if auth.SourceFrom(ctx) == OtherSources {
			other += n.Count
		}
	}, time.Hour, time.Now)
	st := status.New(codes.Unauthenticated, "missing bearer token")
	const extra = 25
	for i := 0; i < MaxDeniedKeys+extra; i++ {
		ctx := auth.WithSource(context.Background(), fmt.Sprintf("10.%d.%d.%d", i>>16&255, i>>8&255, i&255))
		c.add(ctx, "/a.B/C", st)
	}
	c.flush()
	if told != MaxDeniedKeys+1 || total != MaxDeniedKeys+extra || other != extra {
		t.Errorf("told %d counts summing to %d (%d from other sources), want %d summing to %d (%d)",
			told, total, other, MaxDeniedKeys+1, MaxDeniedKeys+extra, extra)
	}
}
