package outbox

import "time"

// SetSweepEvery sets how often o's Pending reads from the first key.
func SetSweepEvery(o *Etcd, d time.Duration) { o.cursor.SweepEvery = d }
