package edge

import (
	"context"
	"log/slog"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/ozsecrets/oz/lib/dial"
)

// An error the gateway hands on comes either from a backend (its status,
// which is the caller's business, passed on as it is) or from the gateway
// itself: the connection to the backend failed, or grpc-gateway could not
// read the request. Only the second kind can carry internal addresses,
// transport details or the caller's own input, so only it is rewritten. A
// call knows which it got by lib/dial's answer mark (dial.WithAnswerMark),
// which the backend connections set when the backend's response headers
// or trailers arrive (a status sent by the backend always comes in them).

// withAnswerMark returns ctx carrying a fresh mark for the calls made with it.
func withAnswerMark(ctx context.Context) context.Context { return dial.WithAnswerMark(ctx) }

// backendAnswered reports whether a backend answered the call made with ctx
// (or a context derived from it).
func backendAnswered(ctx context.Context) bool { return dial.Answered(ctx) }

// backendTitles name the backends in messages to callers.
var backendTitles = map[string]string{
	SecretStore: "the secret store",
	Resolver:    "the resolver",
	Audit:       "the audit service",
}

// backendTitle names a backend in messages to callers.
func backendTitle(backend string) string {
	if t := backendTitles[backend]; t != "" {
		return t
	}
	return "the backend"
}

// notConfiguredMessage is the error of a backend with no address: a fact
// about the deployment, not a transient failure, and safe to show.
func notConfiguredMessage(backend string) string {
	return backendTitles[backend] + " is not configured at the gateway"
}

// hideUnavailable turns an Unavailable that the gateway produced itself
// (the backend could not be reached, or the connection broke) into "<the
// backend> is unavailable; retry", and logs the original, which names
// addresses and transport errors that callers have no business seeing.
// Every other error is returned unchanged, and so is the gateway's own
// "<the backend> did not answer within 10s; retry" (dial.Bound), which
// names nothing internal and tells the caller what happened.
func hideUnavailable(ctx context.Context, log *slog.Logger, backend string, err error) error {
	st, ok := status.FromError(err)
	if !ok || st.Code() != codes.Unavailable || backendAnswered(ctx) || st.Message() == notConfiguredMessage(backend) {
		return err
	}
	if dial.NotAnswered(err) {
		log.LogAttrs(ctx, slog.LevelWarn, "backend did not answer",
			slog.String("backend", backend),
			slog.String("request_id", requestIDFrom(ctx)))
		return err
	}
	title := backendTitle(backend)
	log.LogAttrs(ctx, slog.LevelWarn, "backend unavailable",
		slog.String("backend", backend),
		slog.String("request_id", requestIDFrom(ctx)),
		slog.String("err", st.Message()))
	return status.Error(codes.Unavailable, title+" is unavailable; retry")
}
