package dial_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/ozsecrets/oz/lib/dial"
)

func TestBound(t *testing.T) {
	t.Run("ExpiredBecomesUnavailableNamingTheService", func(t *testing.T) {
		ctx, done := dial.Bound(t.Context(), "the resolver", 10*time.Millisecond)
		<-ctx.Done()
		err := done(status.FromContextError(ctx.Err()).Err())
		st := status.Convert(err)
		if want := "the resolver did not answer within 10ms; retry"; st.Code() != codes.Unavailable || st.Message() != want {
			t.Errorf("got %v %q, want Unavailable %q", st.Code(), st.Message(), want)
		}
		if !dial.NotAnswered(err) {
			t.Errorf("NotAnswered(%v): got false, want true", err)
		}
	})
	t.Run("CallerDeadlineFirstIsKept", func(t *testing.T) {
		parent, cancel := context.WithTimeout(t.Context(), 10*time.Millisecond)
		defer cancel()
		ctx, done := dial.Bound(parent, "the resolver", time.Hour)
		<-ctx.Done()
		if got := status.Code(done(status.FromContextError(ctx.Err()).Err())); got != codes.DeadlineExceeded {
			t.Errorf("got %v, want DeadlineExceeded (the caller's own deadline)", got)
		}
	})
	t.Run("CallerCancelIsKept", func(t *testing.T) {
		parent, cancel := context.WithCancel(t.Context())
		ctx, done := dial.Bound(parent, "the resolver", time.Hour)
		cancel()
		<-ctx.Done()
		if got := status.Code(done(status.FromContextError(ctx.Err()).Err())); got != codes.Canceled {
			t.Errorf("got %v, want Canceled", got)
		}
	})
	t.Run("AnswersPassUnchanged", func(t *testing.T) {
		_, done := dial.Bound(t.Context(), "the resolver", time.Hour)
		want := status.Error(codes.NotFound, "no such secret")
		if got := done(want); !errors.Is(got, want) {
			t.Errorf("got %v, want %v", got, want)
		}
		if dial.NotAnswered(want) {
			t.Errorf("NotAnswered(%v): got true, want false", want)
		}
	})
	t.Run("ZeroMeansNoBound", func(t *testing.T) {
		ctx, done := dial.Bound(t.Context(), "the resolver", 0)
		if _, ok := ctx.Deadline(); ok {
			t.Error("a deadline was set, want none")
		}
		_ = done(nil)
	})
}
