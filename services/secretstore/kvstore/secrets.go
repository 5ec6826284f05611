package kvstore

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/ozsecrets/oz/lib/hostbind"
	auditv1 "github.com/ozsecrets/oz/proto/gen/oz/audit/v1"
	storagev1 "github.com/ozsecrets/oz/proto/gen/oz/storage/v1"
	"github.com/ozsecrets/oz/services/internal/errs"
	"github.com/ozsecrets/oz/services/internal/kv"
	"github.com/ozsecrets/oz/services/secretstore"
	"github.com/ozsecrets/oz/services/secretstore/keyring"
)

// A secret is stored as a storagev1.SecretRecord (protobuf): metadata,
// the wrapped data key and the value's ciphertext. Stores written before
// hold JSON (jsonRecord); decode reads both, and a record is written anew
// as protobuf when it next changes. The two are told apart by the first
// byte: a JSON record is an object, '{', which no protobuf record starts
// with (0x7b would be field 15 as a group, a wire type proto3 never
// writes; the record's first field is 1 or 2, tag 0x0a or 0x12).

// jsonRecord is the JSON the secretstore stored before.
type jsonRecord struct {
	Owner           string    `json:"owner"`
	Name            string    `json:"name"`
	Description     string    `json:"description,omitempty"`
	ValueVersion    int64     `json:"value_version"`
	CreateTime      time.Time `json:"create_time"`
	UpdateTime      time.Time `json:"update_time"`
	ValueUpdateTime time.Time `json:"value_update_time"`
	CreateBy        string    `json:"create_by"`
	UpdateBy        string    `json:"update_by"`
	Etag            string    `json:"etag"`
	KEKID           string    `json:"kek_id"`
	WrappedKey      []byte    `json:"wrapped_key"`
	Ciphertext      []byte    `json:"ciphertext"`
}

func encode(s *secretstore.Secret) ([]byte, error) {
	b, err := proto.Marshal(&storagev1.SecretRecord{
		Owner:           s.Owner.String(),
		Name:            s.Name,
		Description:     s.Description,
		ValueVersion:    s.ValueVersion,
		CreateTime:      timestamp(s.CreateTime),
		UpdateTime:      timestamp(s.UpdateTime),
		ValueUpdateTime: timestamp(s.ValueUpdateTime),
		CreateBy:        s.CreateBy,
		UpdateBy:        s.UpdateBy,
		Etag:            s.Etag,
		Binding:         bindingRecord(s.Binding),
		KekId:           s.Value.KEKID,
		WrappedKey:      s.Value.WrappedKey,
		Ciphertext:      s.Value.Ciphertext,
	})
	if err != nil {
		return nil, fmt.Errorf("encode secret record: %w", err)
	}
	return b, nil
}

// decode parses a stored record, protobuf or JSON; the result shares no
// memory with data. Errors never hold the record's bytes.
func decode(data []byte) (*secretstore.Secret, error) {
	if len(data) > 0 && data[0] == '{' {
		return decodeJSON(data)
	}
	var r storagev1.SecretRecord
	if err := proto.Unmarshal(data, &r); err != nil {
		return nil, errors.New("decode secret record: not a secret record") // proto's error may quote bytes
	}
	owner, err := secretstore.ParseOwner(r.GetOwner())
	if err != nil {
		return nil, fmt.Errorf("decode secret record: bad owner: %w", err)
	}
	return &secretstore.Secret{
		Owner:           owner,
		Name:            r.GetName(),
		Description:     r.GetDescription(),
		ValueVersion:    r.GetValueVersion(),
		CreateTime:      fromTimestamp(r.GetCreateTime()),
		UpdateTime:      fromTimestamp(r.GetUpdateTime()),
		ValueUpdateTime: fromTimestamp(r.GetValueUpdateTime()),
		CreateBy:        r.GetCreateBy(),
		UpdateBy:        r.GetUpdateBy(),
		Etag:            r.GetEtag(),
		Binding:         fromBindingRecord(r.GetBinding()),
		// Unmarshal copies bytes fields: nothing here aliases data.
		Value: keyring.Envelope{KEKID: r.GetKekId(), WrappedKey: r.GetWrappedKey(), Ciphertext: r.GetCiphertext()},
	}, nil
}

// bindingRecord is b as a record keeps it: absent when not bound.
func bindingRecord(b *hostbind.Binding) *storagev1.HostBinding {
	if b == nil {
		return nil
	}
	return &storagev1.HostBinding{Hosts: b.Hosts, AllowQuery: b.AllowQuery, AllowBody: b.AllowBody}
}

// fromBindingRecord is the inverse of bindingRecord: nil (not bound) when
// absent or without hosts.
func fromBindingRecord(r *storagev1.HostBinding) *hostbind.Binding {
	if len(r.GetHosts()) == 0 {
		return nil
	}
	return &hostbind.Binding{Hosts: r.GetHosts(), AllowQuery: r.GetAllowQuery(), AllowBody: r.GetAllowBody()}
}

// decodeJSON parses a record stored as JSON: never bound (bindings came
// after records were protobuf).
func decodeJSON(data []byte) (*secretstore.Secret, error) {
	var r jsonRecord
	if err := json.Unmarshal(data, &r); err != nil {
		return nil, fmt.Errorf("decode secret record: %w", err)
	}
	owner, err := secretstore.ParseOwner(r.Owner)
	if err != nil {
		return nil, fmt.Errorf("decode secret record: bad owner: %w", err)
	}
	return &secretstore.Secret{
		Owner:           owner,
		Name:            r.Name,
		Description:     r.Description,
		ValueVersion:    r.ValueVersion,
		CreateTime:      r.CreateTime,
		UpdateTime:      r.UpdateTime,
		ValueUpdateTime: r.ValueUpdateTime,
		CreateBy:        r.CreateBy,
		UpdateBy:        r.UpdateBy,
		Etag:            r.Etag,
		Value:           keyring.Envelope{KEKID: r.KEKID, WrappedKey: r.WrappedKey, Ciphertext: r.Ciphertext},
	}, nil
}

// timestamp is t as a record's time: absent when zero.
func timestamp(t time.Time) *timestamppb.Timestamp {
	if t.IsZero() {
		return nil
	}
	return timestamppb.New(t)
}

// fromTimestamp is the inverse of timestamp, in UTC as JSON records
// decode.
func fromTimestamp(ts *timestamppb.Timestamp) time.Time {
	if ts == nil {
		return time.Time{}
	}
	return ts.AsTime()
}

// decodeAll decodes the records of a Scan.
func decodeAll(kvs []kv.KV) ([]*secretstore.Secret, error) {
	out := make([]*secretstore.Secret, 0, len(kvs))
	for _, e := range kvs {
		sec, err := decode(e.Value)
		if err != nil {
			return nil, fmt.Errorf("%q: %w", e.Key, err)
		}
		out = append(out, sec)
	}
	return out, nil
}

// ownerPrefix is the key prefix of owner's secrets.
func ownerPrefix(o secretstore.Owner) string { return prefixSecrets + o.String() + "\x00" }

// secretKey is the key of owner's secret name, and of every name that
// differs from it only in case.
func secretKey(o secretstore.Owner, name string) string {
	return ownerPrefix(o) + secretstore.FoldName(name)
}

func errNotFound(o secretstore.Owner, name string) error {
	return errs.E(errs.KindNotFound, "secret %s/secrets/%s not found", o, name)
}

// Create implements secretstore.Store: one Apply, on the condition that
// the name's folded key is absent.
func (s *Store) Create(ctx context.Context, sec *secretstore.Secret, ev *auditv1.Event) error {
	if sec.Owner.IsZero() || sec.Name == "" {
		return errors.New("secretstore: create: owner and name are required")
	}
	k := secretKey(sec.Owner, sec.Name)
	v, err := encode(sec)
	if err != nil {
		return err
	}
	err = s.apply(ctx, []kv.Cond{kv.Absent(k)}, []kv.Write{kv.Put(k, v)}, ev)
	if !conflicted(err) {
		return err
	}
	existing := "another secret"
	if old, gerr := s.kv.Get(ctx, k); gerr == nil {
		if o, derr := decode(old); derr == nil {
			existing = o.Name
		}
	}
	return errs.E(errs.KindAlreadyExists, "%s already has a secret named %s (names are unique without regard to case)", sec.Owner, existing)
}

// get reads the secret of owner named exactly name, with its stored bytes
// (the condition of a write that replaces it).
func (s *Store) get(ctx context.Context, owner secretstore.Owner, name string) (*secretstore.Secret, []byte, error) {
	raw, err := s.kv.Get(ctx, secretKey(owner, name))
	if errors.Is(err, errs.NotFound) {
		return nil, nil, errNotFound(owner, name)
	}
	if err != nil {
		return nil, nil, err
	}
	sec, err := decode(raw)
	if err != nil {
		return nil, nil, err
	}
	if sec.Name != name { // a name differing in case
		return nil, nil, errNotFound(owner, name)
	}
	return sec, raw, nil
}

// Get implements secretstore.Store.
func (s *Store) Get(ctx context.Context, owner secretstore.Owner, name string) (*secretstore.Secret, error) {
	sec, _, err := s.get(ctx, owner, name)
	return sec, err
}

// GetMany implements secretstore.ManyGetter: one kv GetMany.
func (s *Store) GetMany(ctx context.Context, owners []secretstore.Owner, names []string) ([]*secretstore.Secret, error) {
	keys := make([]string, len(owners))
	for i := range owners {
		keys[i] = secretKey(owners[i], names[i])
	}
	raws, err := s.kv.GetMany(ctx, keys)
	if err != nil {
		return nil, err
	}
	out := make([]*secretstore.Secret, len(raws))
	for i, raw := range raws {
		if raw == nil {
			continue
		}
		sec, err := decode(raw)
		if err != nil {
			return nil, err
		}
		if sec.Name == names[i] { // not a name differing in case
			out[i] = sec
		}
	}
	return out, nil
}

// List implements secretstore.Store: one Scan of the owner's keys.
func (s *Store) List(ctx context.Context, owner secretstore.Owner, after string, limit int) ([]*secretstore.Secret, error) {
	if limit <= 0 {
		return nil, fmt.Errorf("secretstore: list: limit must be positive, got %d", limit)
	}
	from := ""
	if after != "" {
		from = secretKey(owner, after)
	}
	kvs, err := s.kv.Scan(ctx, ownerPrefix(owner), from, limit)
	if err != nil {
		return nil, err
	}
	return decodeAll(kvs)
}

// ListOwners implements secretstore.OwnersLister: one ScanPrefixes of the
// owners' keys, so one snapshot and one read of the store.
func (s *Store) ListOwners(ctx context.Context, owners []secretstore.Owner) ([]*secretstore.Secret, error) {
	prefixes := make([]string, len(owners))
	for i, o := range owners {
		prefixes[i] = ownerPrefix(o)
	}
	scans, err := s.kv.ScanPrefixes(ctx, prefixes)
	if err != nil {
		return nil, err
	}
	var out []*secretstore.Secret
	for _, kvs := range scans {
		secs, err := decodeAll(kvs)
		if err != nil {
			return nil, err
		}
		out = append(out, secs...)
	}
	return out, nil
}

// Scan implements secretstore.Scanner: one Scan of the secrets' keys.
func (s *Store) Scan(ctx context.Context, afterOwner secretstore.Owner, afterName string, limit int) ([]*secretstore.Secret, error) {
	if limit <= 0 {
		return nil, fmt.Errorf("secretstore: scan: limit must be positive, got %d", limit)
	}
	from := ""
	if !afterOwner.IsZero() {
		from = secretKey(afterOwner, afterName)
	}
	kvs, err := s.kv.Scan(ctx, prefixSecrets, from, limit)
	if err != nil {
		return nil, err
	}
	return decodeAll(kvs)
}

// Update implements secretstore.Store: a Get, fn, and one Apply on the
// condition that the record is still the one read; else again.
func (s *Store) Update(ctx context.Context, owner secretstore.Owner, name string, fn func(*secretstore.Secret) (*auditv1.Event, error)) (*secretstore.Secret, error) {
	k := secretKey(owner, name)
	for {
		sec, raw, err := s.get(ctx, owner, name)
		if err != nil {
			return nil, err
		}
		ev, err := fn(sec)
		if err != nil {
			return nil, err
		}
		if sec.Owner != owner || sec.Name != name {
			return nil, errors.New("secretstore: update must not change a secret's owner or name")
		}
		v, err := encode(sec)
		if err != nil {
			return nil, err
		}
		err = s.apply(ctx, []kv.Cond{kv.Equal(k, raw)}, []kv.Write{kv.Put(k, v)}, ev)
		if conflicted(err) {
			continue // changed or removed since the read
		}
		if err != nil {
			return nil, err
		}
		return sec.Clone(), nil // fn's caller may keep sec; hand back our own copy
	}
}

// Delete implements secretstore.Store: a Get, fn, and one Apply on the
// condition that the record is still the one read; else again.
func (s *Store) Delete(ctx context.Context, owner secretstore.Owner, name string, fn func(*secretstore.Secret) (*auditv1.Event, error)) error {
	k := secretKey(owner, name)
	for {
		sec, raw, err := s.get(ctx, owner, name)
		if err != nil {
			return err
		}
		ev, err := fn(sec)
		if err != nil {
			return err
		}
		err = s.apply(ctx, []kv.Cond{kv.Equal(k, raw)}, []kv.Write{kv.Delete(k)}, ev)
		if !conflicted(err) {
			return err
		}
	}
}

// Record implements secretstore.Store: an Apply of ev alone.
func (s *Store) Record(ctx context.Context, ev *auditv1.Event) error {
	return s.apply(ctx, nil, nil, ev)
}
