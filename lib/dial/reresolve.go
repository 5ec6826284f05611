package dial

import (
	"sync"
	"time"

	"google.golang.org/grpc/resolver"
)

// reresolveEvery is how often a dns:/// name is resolved again while
// nothing asks for it. gRPC's DNS resolver resolves again only when a
// connection is lost (at most every 30s), never on a timer: a replica
// that is removed is noticed (its connection breaks), but one that is
// added (a scale-up, a rolling update's new pod) would get no calls from
// a client whose connections all stay healthy. Asking every 30s bounds
// that to about a minute (the resolver also waits 30s between
// resolutions).
var reresolveEvery = 30 * time.Second

// reresolving builds the resolver of Builder, and asks it to resolve
// again every so often (ResolveNow), until it is closed.
type reresolving struct {
	resolver.Builder
	every time.Duration
}

func (b reresolving) Build(t resolver.Target, cc resolver.ClientConn, o resolver.BuildOptions) (resolver.Resolver, error) {
	r, err := b.Builder.Build(t, cc, o)
	if err != nil {
		return nil, err
	}
	p := &periodic{Resolver: r, stop: make(chan struct{}), done: make(chan struct{})}
	go p.run(b.every)
	return p, nil
}

type periodic struct {
	resolver.Resolver
	stop, done chan struct{}
	once       sync.Once
}

func (p *periodic) run(every time.Duration) {
	defer close(p.done)
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-p.stop:
			return
		case <-t.C:
			p.Resolver.ResolveNow(resolver.ResolveNowOptions{})
		}
	}
}

// Close stops the timer before closing the resolver, so that ResolveNow
// is never called on a closed resolver.
func (p *periodic) Close() {
	p.once.Do(func() {
		close(p.stop)
		<-p.done
		p.Resolver.Close()
	})
}
