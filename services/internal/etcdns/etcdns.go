// Package etcdns is what the services' etcd stores share: the namespace a
// service owns in a shared etcd (its key prefix), the schema version
// recorded there, and etcd's errors made the service's own.
package etcdns

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/ozsecrets/oz/services/internal/errs"
)

// OpenTimeout bounds a store's first exchanges with etcd when the caller's
// context has no deadline: an unreachable cluster fails the start instead
// of hanging it.
const OpenTimeout = 10 * time.Second

// Check reports whether ns can be a namespace: non-empty, ending in "/".
func Check(ns string) error {
	if ns == "" || ns[len(ns)-1] != '/' {
		return fmt.Errorf("etcd store: namespace %q: must be non-empty and end with \"/\"", ns)
	}
	return nil
}

// WithOpenTimeout returns ctx, bounded by OpenTimeout when it has no
// deadline.
func WithOpenTimeout(ctx context.Context) (context.Context, context.CancelFunc) {
	if _, ok := ctx.Deadline(); ok {
		return ctx, func() {}
	}
	return context.WithTimeout(ctx, OpenTimeout)
}

// Claim records version at key (under ns) on first use, and refuses a
// namespace that a build with another schema version wrote. A cluster that
// does not answer within ctx is said to be unreachable, with where to look.
func Claim(ctx context.Context, cli *clientv3.Client, ns, key, version string) error {
	key = ns + key
	resp, err := cli.Txn(ctx).
		If(clientv3.Compare(clientv3.CreateRevision(key), "=", 0)).
		Then(clientv3.OpPut(key, version)).
		Else(clientv3.OpGet(key)).
		Commit()
	if errors.Is(err, context.DeadlineExceeded) {
		// The client keeps why it could not connect to itself: say where
		// to look.
		return fmt.Errorf("open etcd store %s: no answer from %s in time: is etcd running there, "+
			"and does it accept this client's TLS (scheme, CA, client certificate)? %w",
			ns, strings.Join(cli.Endpoints(), ","), err)
	}
	if err != nil {
		return fmt.Errorf("open etcd store %s: %w", ns, Err("schema", err))
	}
	if !resp.Succeeded {
		kvs := resp.Responses[0].GetResponseRange().GetKvs()
		if len(kvs) != 1 || string(kvs[0].Value) != version {
			var got []byte
			if len(kvs) == 1 {
				got = kvs[0].Value
			}
			return fmt.Errorf("open etcd store %s: schema version %q, this build reads %q", ns, got, version)
		}
	}
	return nil
}

// Err makes an etcd error of operation op the store's: context errors stay
// as they are (errors.Is matches them), as does an errs.Error of the
// store's own; a cluster that cannot be reached or has no leader is
// errs.KindUnavailable; anything else is an internal error. etcd's gRPC
// status is flattened into text, so that it never reaches a caller as the
// service's own (etcd's PermissionDenied is not the caller's).
func Err(op string, err error) error {
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("etcd %s: %w", op, err)
	}
	var own *errs.Error
	if errors.As(err, &own) {
		return err
	}
	code := codes.Unknown
	var ee rpctypes.EtcdError
	if errors.As(err, &ee) {
		code = ee.Code()
	} else if st, ok := status.FromError(err); ok {
		code = st.Code()
	}
	flat := fmt.Errorf("etcd %s: %v", op, err)
	if code == codes.Unavailable || code == codes.DeadlineExceeded {
		return &errs.Error{Kind: errs.KindUnavailable, Message: "store unavailable", Err: flat}
	}
	return flat
}
