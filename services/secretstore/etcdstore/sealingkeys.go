package etcdstore

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"go.etcd.io/etcd/api/v3/mvccpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"

	auditv1 "github.com/ozsecrets/oz/proto/gen/oz/audit/v1"
	"github.com/ozsecrets/oz/services/internal/errs"
	"github.com/ozsecrets/oz/services/secretstore/keyring"
	"github.com/ozsecrets/oz/services/secretstore/sealing"
)

// sealingKeyRecord is the stored form of a sealing key, under
// sealing_keys/<id>: boltstore's, field for field. The private key is
// wrapped by the keyring.
type sealingKeyRecord struct {
	ID         string    `json:"id"`
	KEMID      uint16    `json:"kem_id"`
	PublicKey  []byte    `json:"public_key"`
	CreateTime time.Time `json:"create_time"`
	RetireTime time.Time `json:"retire_time,omitzero"`
	KEKID      string    `json:"kek_id"`
	WrappedKey []byte    `json:"wrapped_key"`
	Ciphertext []byte    `json:"ciphertext"`
}

func encodeSealingKey(k *sealing.Key) (string, error) {
	b, err := json.Marshal(sealingKeyRecord{
		ID:         k.ID,
		KEMID:      k.KEMID,
		PublicKey:  k.PublicKey,
		CreateTime: k.CreateTime,
		RetireTime: k.RetireTime,
		KEKID:      k.Private.KEKID,
		WrappedKey: k.Private.WrappedKey,
		Ciphertext: k.Private.Ciphertext,
	})
	return string(b), err
}

func decodeSealingKey(data []byte) (*sealing.Key, error) {
	var r sealingKeyRecord
	if err := json.Unmarshal(data, &r); err != nil {
		return nil, fmt.Errorf("decode sealing key record: %w", err)
	}
	return &sealing.Key{
		ID:         r.ID,
		KEMID:      r.KEMID,
		PublicKey:  r.PublicKey,
		CreateTime: r.CreateTime,
		RetireTime: r.RetireTime,
		Private:    keyring.Envelope{KEKID: r.KEKID, WrappedKey: r.WrappedKey, Ciphertext: r.Ciphertext},
	}, nil
}

// allSealingKeys reads every sealing key at one revision, which it
// returns, with their entries.
func (s *Store) allSealingKeys(ctx context.Context) ([]*sealing.Key, []*mvccpb.KeyValue, int64, error) {
	for attempt := 0; ; attempt++ {
		kvs, rev, err := s.rangeAt(ctx, s.sealing, clientv3.GetPrefixRangeEnd(s.sealing), 0, 0)
		if errors.Is(err, rpctypes.ErrCompacted) && attempt < 2 {
			continue
		}
		if err != nil {
			return nil, nil, 0, storeErr("sealing keys", err)
		}
		keys := make([]*sealing.Key, 0, len(kvs))
		for _, kv := range kvs {
			k, err := decodeSealingKey(kv.Value)
			if err != nil {
				return nil, nil, 0, fmt.Errorf("%q: %w", kv.Key, err)
			}
			keys = append(keys, k)
		}
		return keys, kvs, rev, nil
	}
}

// SealingKeys implements sealing.Store.
func (s *Store) SealingKeys(ctx context.Context) ([]*sealing.Key, error) {
	if err := s.ready(ctx); err != nil {
		return nil, err
	}
	keys, _, _, err := s.allSealingKeys(ctx)
	return keys, err
}

// SealingKey implements sealing.Store.
func (s *Store) SealingKey(ctx context.Context, id string) (*sealing.Key, error) {
	if err := s.ready(ctx); err != nil {
		return nil, err
	}
	resp, err := s.cli.Get(ctx, s.sealing+id)
	if err != nil {
		return nil, storeErr("sealing key", err)
	}
	if len(resp.Kvs) == 0 {
		return nil, errs.E(errs.KindNotFound, "sealing key %s not found", id)
	}
	return decodeSealingKey(resp.Kvs[0].Value)
}

// UpdateSealingKeys implements sealing.Store: read every key, fn, and a
// transaction replacing them if none has changed, appeared or gone since
// the read; else again.
func (s *Store) UpdateSealingKeys(ctx context.Context, fn func([]*sealing.Key) ([]*sealing.Key, *auditv1.Event, error)) ([]*sealing.Key, error) {
	if err := s.ready(ctx); err != nil {
		return nil, err
	}
	for {
		old, kvs, rev, err := s.allSealingKeys(ctx)
		if err != nil {
			return nil, err
		}
		got, ev, err := fn(old)
		if err != nil {
			return nil, err
		}
		// Unchanged since the read: no key in the range written after it
		// (a new or changed key), and each key read still at its revision
		// (not deleted).
		cmps := []clientv3.Cmp{clientv3.Compare(clientv3.ModRevision(s.sealing).WithPrefix(), "<", rev+1)}
		for _, kv := range kvs {
			cmps = append(cmps, clientv3.Compare(clientv3.ModRevision(string(kv.Key)), "=", kv.ModRevision))
		}
		var ops []clientv3.Op
		keep := make(map[string]bool, len(got))
		for _, k := range got {
			if k.ID == "" {
				return nil, errors.New("etcdstore: a sealing key without an id")
			}
			if keep[k.ID] {
				return nil, fmt.Errorf("etcdstore: two sealing keys with id %s", k.ID)
			}
			keep[k.ID] = true
			v, err := encodeSealingKey(k)
			if err != nil {
				return nil, err
			}
			ops = append(ops, clientv3.OpPut(s.sealing+k.ID, v))
		}
		for _, k := range old {
			if !keep[k.ID] {
				ops = append(ops, clientv3.OpDelete(s.sealing+k.ID))
			}
		}
		p, err := s.prepareEvent(ev)
		if err != nil {
			return nil, err
		}
		resp, err := s.txn(ctx, "update sealing keys", p, cmps, ops)
		if err != nil {
			return nil, err
		}
		if resp.Succeeded {
			out := make([]*sealing.Key, len(got))
			for i, k := range got {
				out[i] = k.Clone()
			}
			return out, nil
		}
	}
}
