package dial

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/stats"
	"google.golang.org/grpc/status"
)

// Every call a process makes to another has a deadline (DESIGN §7): a
// hung service (frozen, swapping, partitioned) must give its callers a
// prompt, clear Unavailable, not a wait as long as the first caller's
// patience followed by "context deadline exceeded". Bound puts the
// deadline on one call; UnaryBound on every unary call of a connection.

// errBound is the cause of a context that Bound ended.
var errBound = errors.New("dial: call bound expired")

// notAnswered is how the message of a call that Bound ended ends;
// NotAnswered tells it apart.
const notAnswered = " did not answer within "

// Bound returns ctx bounded to d, unless its own deadline comes sooner,
// and done, which must be called with the call's error once the call has
// ended (it releases the bound). done returns the error unchanged but in
// one case: when the bound, not the caller's deadline or cancellation,
// ended the call, it returns Unavailable "<name> did not answer within
// <d>; retry" (name as "the resolver"), which callers may show. d <= 0
// means no bound.
func Bound(ctx context.Context, name string, d time.Duration) (bounded context.Context, done func(error) error) {
	if d <= 0 {
		return ctx, func(err error) error { return err }
	}
	if dl, ok := ctx.Deadline(); ok && time.Until(dl) <= d {
		return ctx, func(err error) error { return err } // the caller's comes first
	}
	end := time.Now().Add(d)
	bctx, cancel := context.WithDeadlineCause(ctx, end, errBound)
	return bctx, func(err error) error {
		defer cancel()
		// The clock, not only the context: gRPC reports a call past its
		// deadline as soon as the time has come, which may be before the
		// context's timer has fired.
		expired := errors.Is(context.Cause(bctx), errBound) || !time.Now().Before(end)
		if err != nil && ctx.Err() == nil && expired {
			switch status.Code(err) {
			case codes.DeadlineExceeded, codes.Canceled, codes.Unavailable:
				return status.Error(codes.Unavailable, NotAnsweredMessage(name, d))
			}
		}
		return err
	}
}

// NotAnsweredMessage is the message of a call that Bound ended.
func NotAnsweredMessage(name string, d time.Duration) string {
	return fmt.Sprintf("%s%s%s; retry", name, notAnswered, d)
}

// NotAnswered reports whether err is the Unavailable of a call that Bound
// ended (here, or in a service that relayed it).
func NotAnswered(err error) bool {
	st, ok := status.FromError(err)
	return ok && st.Code() == codes.Unavailable && strings.Contains(st.Message(), notAnswered)
}

// UnaryBound bounds every unary call made with it (Bound) to timeout(method)
// and names the service in messages as name(method). Streaming calls are
// not bounded: a stream may rightly last as long as the connection (a
// watch); bound its calls with Bound where they are made.
func UnaryBound(timeout func(method string) time.Duration, name func(method string) string) grpc.UnaryClientInterceptor {
	return func(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
		ctx, done := Bound(ctx, name(method), timeout(method))
		return done(invoker(ctx, method, req, reply, cc, opts...))
	}
}

// UnaryUnanswered replaces the Unavailable of a unary call that the
// service called never answered (the connection could not be made, or
// broke: gRPC's own "connection error: desc = transport: …") with
// Unavailable "<name(method)> is unavailable; retry", after handing the
// original to logf. gRPC's message names internal addresses and transport
// details, and relayed as it is it reads like the caller's own connection
// failing: a CLI told "connection error … authentication handshake
// failed" by the gateway, about the secretstore's connection to the
// resolver, blamed the gateway. A status the service sent is unchanged.
func UnaryUnanswered(name func(method string) string, logf func(method string, err error)) grpc.UnaryClientInterceptor {
	return func(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
		if _, ok := ctx.Value(answerKey{}).(*answerMark); !ok {
			ctx = WithAnswerMark(ctx) // else the caller's mark serves, and it sees the answer too
		}
		err := invoker(ctx, method, req, reply, cc, opts...)
		if status.Code(err) != codes.Unavailable || Answered(ctx) || NotAnswered(err) {
			return err
		}
		logf(method, err)
		return status.Error(codes.Unavailable, name(method)+" is unavailable; retry")
	}
}

// answerKey marks, in a call's context, that the service called answered:
// its response headers or trailers came (a status it sent always comes in
// them).
type answerKey struct{}

type answerMark struct{ atomic.Bool }

// WithAnswerMark returns ctx carrying a fresh mark, which the connections
// of New set when the service called answers a call made with ctx (or a
// context derived from it).
func WithAnswerMark(ctx context.Context) context.Context {
	return context.WithValue(ctx, answerKey{}, new(answerMark))
}

// Answered reports whether the service called answered a call made with
// ctx, which carries a mark (WithAnswerMark): its status came from the
// service, not from gRPC's side of a failed connection.
func Answered(ctx context.Context) bool {
	m, _ := ctx.Value(answerKey{}).(*answerMark)
	return m != nil && m.Load()
}

// answerStats is the client stats handler, installed by New, that sets
// the mark.
type answerStats struct{}

func (answerStats) TagRPC(ctx context.Context, _ *stats.RPCTagInfo) context.Context   { return ctx }
func (answerStats) TagConn(ctx context.Context, _ *stats.ConnTagInfo) context.Context { return ctx }
func (answerStats) HandleConn(context.Context, stats.ConnStats)                       {}

func (answerStats) HandleRPC(ctx context.Context, s stats.RPCStats) {
	switch s.(type) {
	case *stats.InHeader, *stats.InTrailer:
		if m, ok := ctx.Value(answerKey{}).(*answerMark); ok {
			m.Store(true)
		}
	}
}
