package boltstore

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	bolt "go.etcd.io/bbolt"

	auditv1 "github.com/ozsecrets/oz/proto/gen/oz/audit/v1"
	"github.com/ozsecrets/oz/services/internal/errs"
	"github.com/ozsecrets/oz/services/secretstore/keyring"
	"github.com/ozsecrets/oz/services/secretstore/sealing"
)

// sealingKeyRecord is the stored form of a sealing key, under its id in
// the "sealing_keys" bucket. The private key is wrapped by the keyring.
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
	return json.Marshal(sealingKeyRecord{
		ID:         k.ID,
		KEMID:      k.KEMID,
		PublicKey:  k.PublicKey,
		CreateTime: k.CreateTime,
		RetireTime: k.RetireTime,
		KEKID:      k.Private.KEKID,
		WrappedKey: k.Private.WrappedKey,
		Ciphertext: k.Private.Ciphertext,
	})
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

func allSealingKeys(tx *bolt.Tx) ([]*sealing.Key, error) {
	var out []*sealing.Key
	err := tx.Bucket(bucketSealingKeys).ForEach(func(k, v []byte) error {
		key, err := decodeSealingKey(v)
		if err != nil {
			return fmt.Errorf("%q: %w", k, err)
		}
		out = append(out, key)
		return nil
	})
	return out, err
}

// SealingKeys implements sealing.Store.
func (s *Store) SealingKeys(ctx context.Context) ([]*sealing.Key, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	var out []*sealing.Key
	err := s.db.View(func(tx *bolt.Tx) error {
		var err error
		out, err = allSealingKeys(tx)
		return err
	})
	return out, err
}

// SealingKey implements sealing.Store.
func (s *Store) SealingKey(ctx context.Context, id string) (*sealing.Key, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	var out *sealing.Key
	err := s.db.View(func(tx *bolt.Tx) error {
		v := tx.Bucket(bucketSealingKeys).Get([]byte(id))
		if v == nil {
			return errs.E(errs.KindNotFound, "sealing key %s not found", id)
		}
		var err error
		out, err = decodeSealingKey(v)
		return err
	})
	return out, err
}

// UpdateSealingKeys implements sealing.Store. It runs in one Update
// transaction: rotations are rare, and batching them with others buys
// nothing.
func (s *Store) UpdateSealingKeys(ctx context.Context, fn func([]*sealing.Key) ([]*sealing.Key, *auditv1.Event, error)) ([]*sealing.Key, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	var out []*sealing.Key
	err := s.db.Update(func(tx *bolt.Tx) error {
		old, err := allSealingKeys(tx)
		if err != nil {
			return err
		}
		got, ev, err := fn(old)
		if err != nil {
			return err
		}
		b := tx.Bucket(bucketSealingKeys)
		keep := make(map[string]bool, len(got))
		for _, k := range got {
			if k.ID == "" {
				return errors.New("boltstore: a sealing key without an id")
			}
			if keep[k.ID] {
				return fmt.Errorf("boltstore: two sealing keys with id %s", k.ID)
			}
			keep[k.ID] = true
			v, err := encodeSealingKey(k)
			if err != nil {
				return err
			}
			if err := b.Put([]byte(k.ID), v); err != nil {
				return err
			}
		}
		for _, k := range old {
			if !keep[k.ID] {
				if err := b.Delete([]byte(k.ID)); err != nil {
					return err
				}
			}
		}
		if err := s.addEvent(tx, ev); err != nil {
			return err
		}
		out = make([]*sealing.Key, len(got))
		for i, k := range got {
			out[i] = k.Clone()
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}
