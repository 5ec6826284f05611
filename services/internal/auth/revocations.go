package auth

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	internalapiv1 "github.com/ozsecrets/oz/proto/gen/oz/internalapi/v1"
)

// Revocation notices: a revoked token must stop working at once, not when
// the 5-second cache entries that vouch for it expire. The resolver
// publishes the ids of the tokens it revokes (Notices.Publish) to its own
// cache and, over AuthService.WatchRevocations, to every service that
// follows them (FollowRevocations), which drops them from its cache and
// acknowledges. Publish waits for those acknowledgements, so that when a
// revocation returns, every service subscribed refuses the token.
//
// Where a notice cannot arrive (the stream is down, a subscriber too slow)
// the cache's TTL is the bound: DefaultCacheTTL at most. A subscriber
// forgets its whole cache whenever it (re)subscribes, since it may have
// missed notices meanwhile.

// DefaultAckWait bounds how long a revocation waits for the services
// subscribed to acknowledge its notice; one that does not is bounded by
// the cache TTL instead.
const DefaultAckWait = 2 * time.Second

// noticeBuffer is how many notices may wait for a subscriber; one that
// falls further behind is cut off (and forgets its cache on resubscribing).
const noticeBuffer = 64

// Notices is the resolver's side of revocation notices. The zero value is
// not usable: use NewNotices. It is safe for concurrent use.
type Notices struct {
	// AckWait bounds Publish's wait for acknowledgements.
	AckWait time.Duration
	Log     *slog.Logger

	mu     sync.Mutex
	subs   map[*subscriber]struct{}
	local  []func(tokenIDs []string)
	closed bool
}

// subscriber is one WatchRevocations stream.
type subscriber struct {
	send chan *internalapiv1.WatchRevocationsResponse
	kill chan struct{} // closed to end the stream (too slow, or Close)

	// Under Notices.mu:
	seq     uint64        // the last sequence queued
	acked   uint64        // the last sequence acknowledged
	changed chan struct{} // closed (and replaced) when acked changes or the stream ends
	ended   bool
	killed  bool
}

// NewNotices returns Notices with DefaultAckWait, logging to log.
func NewNotices(log *slog.Logger) *Notices {
	if log == nil {
		log = slog.Default()
	}
	return &Notices{AckWait: DefaultAckWait, Log: log, subs: map[*subscriber]struct{}{}}
}

// Local has f told of every revocation, synchronously: the resolver's own
// cache (Cache.Drop).
func (n *Notices) Local(f func(tokenIDs []string)) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.local = append(n.local, f)
}

// Close ends every stream and refuses new ones: call it when the daemon
// begins to stop, so that a graceful stop does not wait for the streams,
// which would otherwise never end. The subscribers' caches fall back to
// their TTL, then to whichever resolver they reach next.
func (n *Notices) Close() {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.closed = true
	for s := range n.subs {
		s.stop()
	}
}

func (s *subscriber) stop() {
	if !s.killed {
		s.killed = true
		close(s.kill)
	}
}

// Publish tells the local listeners and every subscriber that the tokens
// tokenIDs are revoked, and waits until each subscriber has acknowledged
// (dropped them from its cache), for at most AckWait or until ctx is done.
// It returns how many subscribers did not acknowledge in time: those refuse
// the tokens within their cache's TTL instead.
func (n *Notices) Publish(ctx context.Context, tokenIDs []string) int {
	if len(tokenIDs) == 0 {
		return 0
	}
	type wait struct {
		s   *subscriber
		seq uint64
	}
	var waits []wait
	n.mu.Lock()
	local := n.local
	for s := range n.subs {
		s.seq++
		msg := &internalapiv1.WatchRevocationsResponse{Sequence: s.seq, TokenIds: tokenIDs}
		select {
		case s.send <- msg:
			waits = append(waits, wait{s, s.seq})
		default:
			// Too far behind: cut it off; it resubscribes and forgets
			// its cache.
			s.stop()
		}
	}
	n.mu.Unlock()
	for _, f := range local {
		f(tokenIDs)
	}
	if len(waits) == 0 {
		return 0
	}
	ctx, cancel := context.WithTimeout(ctx, n.AckWait)
	defer cancel()
	late := 0
	for _, w := range waits {
		if !n.awaitAck(ctx, w.s, w.seq) {
			late++
		}
	}
	if late > 0 {
		n.Log.Warn("revocation notices: some services did not acknowledge in time; they refuse the tokens within the cache TTL",
			"services", late, "ttl", DefaultCacheTTL.String())
	}
	return late
}

// awaitAck reports whether s acknowledged seq (or ended, so holds no
// cache entry of ours any more) before ctx is done.
func (n *Notices) awaitAck(ctx context.Context, s *subscriber, seq uint64) bool {
	for {
		n.mu.Lock()
		done, changed := s.acked >= seq || s.ended, s.changed
		n.mu.Unlock()
		if done {
			return true
		}
		select {
		case <-changed:
		case <-ctx.Done():
			return false
		}
	}
}

// Serve runs one WatchRevocations stream until the subscriber leaves, is
// cut off, or Close is called.
func (n *Notices) Serve(stream internalapiv1.AuthService_WatchRevocationsServer) error {
	s := &subscriber{
		send:    make(chan *internalapiv1.WatchRevocationsResponse, noticeBuffer),
		kill:    make(chan struct{}),
		changed: make(chan struct{}),
	}
	n.mu.Lock()
	if n.closed {
		n.mu.Unlock()
		return status.Error(codes.Unavailable, "the resolver is stopping")
	}
	n.subs[s] = struct{}{}
	n.mu.Unlock()
	defer func() {
		n.mu.Lock()
		delete(n.subs, s)
		s.ended = true
		close(s.changed)
		n.mu.Unlock()
	}()
	// In place: every revocation from now on is sent. The subscriber
	// forgets its cache on this message, for what it may have missed.
	if err := stream.Send(&internalapiv1.WatchRevocationsResponse{}); err != nil {
		return err
	}
	recvErr := make(chan error, 1)
	go func() {
		for {
			req, err := stream.Recv()
			if err != nil {
				recvErr <- err
				return
			}
			n.mu.Lock()
			if a := req.GetAckSequence(); a > s.acked && a <= s.seq {
				s.acked = a
				close(s.changed)
				s.changed = make(chan struct{})
			}
			n.mu.Unlock()
		}
	}()
	for {
		select {
		case msg := <-s.send:
			if err := stream.Send(msg); err != nil {
				return err
			}
		case err := <-recvErr:
			if errors.Is(err, context.Canceled) || status.Code(err) == codes.Canceled {
				return nil
			}
			return err
		case <-s.kill:
			return status.Error(codes.Unavailable, "revocation notices: stream ended by the resolver; subscribe again")
		case <-stream.Context().Done():
			return stream.Context().Err()
		}
	}
}

// FollowRevocations keeps cache subscribed to the resolver's revocation
// notices through conn (to the resolver) until ctx is done, dropping each revoked token
// from cache as its notice arrives. While the stream is down it retries
// (after 1 s, doubling up to 10 s), and the cache's TTL bounds how long a
// revoked token keeps working; on each (re)subscription it forgets the
// whole cache. Run it in its own goroutine.
func FollowRevocations(ctx context.Context, conn grpc.ClientConnInterface, cache *Cache, log *slog.Logger) {
	client := internalapiv1.NewAuthServiceClient(conn)
	if log == nil {
		log = slog.Default()
	}
	const first, most = time.Second, 10 * time.Second
	backoff := first
	for {
		subscribed, err := followOnce(ctx, client, cache)
		if ctx.Err() != nil {
			return
		}
		if subscribed {
			backoff = first
		}
		log.Warn("revocation notices: not subscribed; revoked tokens are refused within the cache TTL meanwhile",
			"err", status.Convert(err).Message(), "ttl", cache.TTL.String(), "retry_in", backoff.String())
		select {
		case <-ctx.Done():
			return
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, most)
	}
}

// followOnce follows one stream until it fails; subscribed says whether it
// got as far as the resolver's first message.
func followOnce(ctx context.Context, client internalapiv1.AuthServiceClient, cache *Cache) (subscribed bool, err error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stream, err := client.WatchRevocations(ctx)
	if err != nil {
		return false, err
	}
	hello, err := stream.Recv()
	if err != nil {
		return false, err
	}
	if hello.GetSequence() != 0 {
		return false, errors.New("revocation notices: the first message was not the subscription's")
	}
	// Revocations made while we were not subscribed were not sent to us.
	cache.Clear()
	for {
		msg, err := stream.Recv()
		if err != nil {
			return true, err
		}
		cache.Drop(msg.GetTokenIds())
		if err := stream.Send(&internalapiv1.WatchRevocationsRequest{AckSequence: msg.GetSequence()}); err != nil {
			return true, err
		}
	}
}
