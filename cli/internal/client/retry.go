package client

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/ozsecrets/oz/lib/reqmeta"
)

// Retries (issue 15). A call that got no answer — Unavailable: the
// gateway or a service behind it did not answer, or the connection broke;
// DeadlineExceeded — is sent again, at most DefaultRetries times, after a
// pause that doubles from FirstBackoff (0.5s, then 1s, then 2s…), as long
// as it failed within RetryWindow of its first attempt. Each attempt has
// its own deadline (DefaultTimeout). $OZ_RETRIES sets the number of
// retries (0: none).
//
// The window is what keeps retries from multiplying waits: what they are
// for — an answer lost on the way back, a connection broken, a service
// restarting — fails fast, while a service that does not answer at all
// takes the gateway's whole bound to say so (or, a hung gateway, the
// CLI's own deadline), and asking it twice more would only triple the
// wait for the same message.
//
// Reads are safe to send again as they are. A write is not, by itself: its
// first attempt may have committed before its answer was lost, and a
// second would then make the change again, or fail as a duplicate
// ("already exists"). So every write carries an idempotency key
// (reqmeta.IdempotencyKey), fresh for the one logical write and the same
// in each of its attempts: the service answers an attempt whose key it has
// seen with the first answer, and changes nothing.
const (
	DefaultRetries = 2
	MaxRetries     = 10
	FirstBackoff   = 500 * time.Millisecond
	RetryWindow    = 5 * time.Second
)

// ParseRetries reads $OZ_RETRIES: "" is DefaultRetries.
func ParseRetries(s string) (int, error) {
	if s == "" {
		return DefaultRetries, nil
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 0 || n > MaxRetries {
		return 0, fmt.Errorf("OZ_RETRIES must be a whole number from 0 (no retries) to %d, got %q", MaxRetries, s)
	}
	return n, nil
}

// readPrefixes are the method names (after the service) of calls that
// change nothing. Every other call is a write and gets an idempotency key.
var readPrefixes = []string{"Get", "List", "Explain", "Verify", "Export", "Review", "Watch", "Authenticate"}

// IsWrite reports whether the gRPC method (full name,
// "/oz.secrets.v1.SecretService/CreateSecret") changes something.
func IsWrite(method string) bool {
	name := method[strings.LastIndex(method, "/")+1:]
	for _, p := range readPrefixes {
		if strings.HasPrefix(name, p) {
			return false
		}
	}
	return true
}

// retry is the outermost interceptor: it gives a write its idempotency
// key, then runs the attempts. sleep waits between them.
func retry(retries int, sleep func(context.Context, time.Duration) error) grpc.UnaryClientInterceptor {
	return func(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
		if IsWrite(method) {
			ctx = metadata.AppendToOutgoingContext(ctx, reqmeta.IdempotencyKey, reqmeta.NewIdempotencyKey())
		}
		start := time.Now()
		wait := FirstBackoff
		for attempt := 0; ; attempt++ {
			err := invoker(ctx, method, req, reply, cc, opts...)
			if attempt >= retries || !retryable(ctx, err) || time.Since(start) >= RetryWindow {
				return err
			}
			if sleep(ctx, wait) != nil {
				return err
			}
			wait *= 2
		}
	}
}

// retryable reports whether err means the call got no answer, while the
// caller still waits for one (ctx is not done: not interrupted, its own
// deadline not passed).
func retryable(ctx context.Context, err error) bool {
	if ctx.Err() != nil {
		return false
	}
	st := status.Convert(err)
	switch st.Code() {
	case codes.Unavailable:
		// A certificate that does not verify will not verify next time.
		return !strings.HasPrefix(st.Message(), cannotVerify)
	case codes.DeadlineExceeded:
		return true
	}
	return false
}

// sleepCtx waits d, or until ctx is done.
func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}
