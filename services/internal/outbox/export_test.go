package outbox

import (
	"context"
	"fmt"
	"time"

	"google.golang.org/protobuf/proto"

	auditv1 "github.com/ozsecrets/oz/proto/gen/oz/audit/v1"
	"github.com/ozsecrets/oz/services/internal/kv"
)

// SetKVSweepEvery sets how often o's Pending reads from the first key.
func SetKVSweepEvery(o *KV, d time.Duration) { o.cursor.SweepEvery = d }

// PutKVAt writes ev into o as an event whose key was taken at t and that
// commits only now (a replica whose clock is behind).
func PutKVAt(ctx context.Context, o *KV, ev *auditv1.Event, t time.Time) error {
	n := uint64(t.UnixNano())
	e := proto.Clone(ev).(*auditv1.Event)
	e.Id = fmt.Sprintf("%s-%s-%016x", o.emitter, "0badc0de", n)
	b, err := proto.Marshal(e)
	if err != nil {
		return err
	}
	return o.store.Apply(ctx, nil, []kv.Write{kv.Put(kvKey(n, "0badc0de"), b)})
}
