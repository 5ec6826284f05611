package etcdkv

import (
	"context"
	"fmt"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/ozsecrets/oz/services/internal/etcdns"
)

// idKey is the store id's key under a namespace: a random name given at
// first start (package storeid), next to the schema version.
const idKey = "meta/store-id"

// ReadID returns the store id of the namespace ns, "" when it has none,
// and whether ns holds anything besides its meta/ keys (data written by a
// service, or by an earlier build that gave no id).
func ReadID(ctx context.Context, cli *clientv3.Client, ns string) (id string, hasData bool, err error) {
	if err := etcdns.Check(ns); err != nil {
		return "", false, err
	}
	ctx, cancel := etcdns.WithOpenTimeout(ctx)
	defer cancel()
	resp, err := cli.Txn(ctx).Then(
		clientv3.OpGet(ns+idKey),
		clientv3.OpGet(ns, clientv3.WithPrefix(), clientv3.WithCountOnly()),
		clientv3.OpGet(ns+"meta/", clientv3.WithPrefix(), clientv3.WithCountOnly()),
	).Commit()
	if err != nil {
		return "", false, fmt.Errorf("etcd store %s on %v: read the store id: %w", ns, cli.Endpoints(), etcdns.Err("store id", err))
	}
	if kvs := resp.Responses[0].GetResponseRange().GetKvs(); len(kvs) == 1 {
		id = string(kvs[0].Value)
	}
	all, meta := resp.Responses[1].GetResponseRange().GetCount(), resp.Responses[2].GetResponseRange().GetCount()
	return id, all > meta, nil
}

// ClaimID gives the namespace ns the store id id unless it has one, and
// returns the id it has then: id, or the one another replica gave first.
func ClaimID(ctx context.Context, cli *clientv3.Client, ns, id string) (string, error) {
	if err := etcdns.Check(ns); err != nil {
		return "", err
	}
	ctx, cancel := etcdns.WithOpenTimeout(ctx)
	defer cancel()
	key := ns + idKey
	resp, err := cli.Txn(ctx).
		If(clientv3.Compare(clientv3.CreateRevision(key), "=", 0)).
		Then(clientv3.OpPut(key, id)).
		Else(clientv3.OpGet(key)).
		Commit()
	if err != nil {
		return "", fmt.Errorf("etcd store %s on %v: write the store id: %w", ns, cli.Endpoints(), etcdns.Err("store id", err))
	}
	if resp.Succeeded {
		return id, nil
	}
	if kvs := resp.Responses[0].GetResponseRange().GetKvs(); len(kvs) == 1 {
		return string(kvs[0].Value), nil
	}
	return "", fmt.Errorf("etcd store %s: store id vanished while being read", ns)
}
