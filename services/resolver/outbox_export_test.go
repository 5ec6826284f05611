package resolver

import (
	"context"
	"time"

	"google.golang.org/protobuf/proto"

	auditv1 "github.com/ozsecrets/oz/proto/gen/oz/audit/v1"
)

// OutboxTestSetSweepEvery sets how often o's Pending reads from the first
// key.
func OutboxTestSetSweepEvery(o *Outbox, d time.Duration) { o.cursor.SweepEvery = d }

// OutboxTestPutAt writes ev into o's outbox as an event whose key was
// taken at t and that commits only now (a replica whose clock is behind).
func OutboxTestPutAt(ctx context.Context, o *Outbox, ev *auditv1.Event, t time.Time) error {
	n := uint64(t.UnixNano())
	e := proto.Clone(ev).(*auditv1.Event)
	e.Id = eventID(n, "0badc0de")
	b, err := proto.Marshal(e)
	if err != nil {
		return err
	}
	return o.store.Apply(ctx, nil, []Write{Put(outboxKey(n, "0badc0de"), b)})
}
