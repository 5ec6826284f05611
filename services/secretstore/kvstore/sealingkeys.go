package kvstore

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"

	auditv1 "github.com/ozsecrets/oz/proto/gen/oz/audit/v1"
	"github.com/ozsecrets/oz/services/internal/errs"
	"github.com/ozsecrets/oz/services/internal/kv"
	"github.com/ozsecrets/oz/services/secretstore/keyring"
	"github.com/ozsecrets/oz/services/secretstore/sealing"
)

// sealingKeyRecord is the stored form of a sealing key, under
// sealing_keys/{id}. The private key is wrapped by the keyring.
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

func encodeSealingKey(k *sealing.Key) ([]byte, error) {
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
	if err != nil {
		return nil, fmt.Errorf("encode sealing key record: %w", err)
	}
	return b, nil
}

// decodeSealingKey parses a stored record; the result shares no memory
// with data.
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

// SealingKeys implements sealing.Store: one Scan, in id order.
func (s *Store) SealingKeys(ctx context.Context) ([]*sealing.Key, error) {
	kvs, err := s.kv.Scan(ctx, prefixSealingKeys, "", 0)
	if err != nil {
		return nil, err
	}
	out := make([]*sealing.Key, 0, len(kvs))
	for _, e := range kvs {
		k, err := decodeSealingKey(e.Value)
		if err != nil {
			return nil, fmt.Errorf("%q: %w", e.Key, err)
		}
		out = append(out, k)
	}
	return out, nil
}

// SealingKey implements sealing.Store: one Get.
func (s *Store) SealingKey(ctx context.Context, id string) (*sealing.Key, error) {
	v, err := s.kv.Get(ctx, prefixSealingKeys+id)
	if errors.Is(err, errs.NotFound) {
		return nil, errs.E(errs.KindNotFound, "sealing key %s not found", id)
	}
	if err != nil {
		return nil, err
	}
	return decodeSealingKey(v)
}

// UpdateSealingKeys implements sealing.Store. It reads the version of the
// keys (sealing_keys_version), then the keys, calls fn, and makes one
// Apply that writes fn's keys, deletes the others and bumps the version,
// on the condition that the version is still the one read; else again.
// Every change of the keys is such an Apply, so the condition holds only
// when no key has changed, appeared or gone since the version was read —
// before the keys fn saw were read.
func (s *Store) UpdateSealingKeys(ctx context.Context, fn func([]*sealing.Key) ([]*sealing.Key, *auditv1.Event, error)) ([]*sealing.Key, error) {
	for {
		version, err := s.kv.Get(ctx, keySealingVersion)
		if err != nil && !errors.Is(err, errs.NotFound) {
			return nil, err
		}
		cond, next := kv.Absent(keySealingVersion), uint64(1)
		if err == nil {
			n, perr := strconv.ParseUint(string(version), 10, 64)
			if perr != nil {
				return nil, fmt.Errorf("secretstore: %s holds %q, not a count", keySealingVersion, version)
			}
			cond, next = kv.Equal(keySealingVersion, version), n+1
		}
		old, err := s.SealingKeys(ctx)
		if err != nil {
			return nil, err
		}
		got, ev, err := fn(old)
		if err != nil {
			return nil, err
		}
		writes := make([]kv.Write, 0, len(got)+len(old)+1)
		keep := make(map[string]bool, len(got))
		for _, k := range got {
			if k.ID == "" {
				return nil, errors.New("secretstore: a sealing key without an id")
			}
			if keep[k.ID] {
				return nil, fmt.Errorf("secretstore: two sealing keys with id %s", k.ID)
			}
			keep[k.ID] = true
			v, err := encodeSealingKey(k)
			if err != nil {
				return nil, err
			}
			writes = append(writes, kv.Put(prefixSealingKeys+k.ID, v))
		}
		for _, k := range old {
			if !keep[k.ID] {
				writes = append(writes, kv.Delete(prefixSealingKeys+k.ID))
			}
		}
		writes = append(writes, kv.Put(keySealingVersion, strconv.AppendUint(nil, next, 10)))
		err = s.apply(ctx, []kv.Cond{cond}, writes, ev)
		if conflicted(err) {
			continue // another process changed the keys meanwhile
		}
		if err != nil {
			return nil, err
		}
		out := make([]*sealing.Key, len(got))
		for i, k := range got {
			out[i] = k.Clone()
		}
		return out, nil
	}
}
