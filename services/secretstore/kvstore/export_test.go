package kvstore

import (
	"encoding/json"

	"github.com/ozsecrets/oz/services/secretstore"
)

// Test hooks and internals, for the tests of this package only.

// SetHookBeforeSwitch makes UpgradeEtcd call f before its last
// transaction, until the returned function restores it.
func SetHookBeforeSwitch(f func()) (restore func()) {
	old := testHookBeforeSwitch
	testHookBeforeSwitch = f
	return func() { testHookBeforeSwitch = old }
}

// DiscardEvents makes s write no audit event (outbox.KV.DiscardEvents),
// for the benchmarks' comparison of writes with and without auditing.
func DiscardEvents(s *Store) { s.ob.DiscardEvents() }

// Encode is the stored form of a secret.
var Encode = encode

// EncodeJSON is the stored form of a secret before records were protobuf.
func EncodeJSON(s *secretstore.Secret) ([]byte, error) {
	return json.Marshal(jsonRecord{
		Owner: s.Owner.String(), Name: s.Name, Description: s.Description, ValueVersion: s.ValueVersion,
		CreateTime: s.CreateTime, UpdateTime: s.UpdateTime, ValueUpdateTime: s.ValueUpdateTime,
		CreateBy: s.CreateBy, UpdateBy: s.UpdateBy, Etag: s.Etag,
		KEKID: s.Value.KEKID, WrappedKey: s.Value.WrappedKey, Ciphertext: s.Value.Ciphertext,
	})
}

// SecretKey is the key of owner's secret name.
var SecretKey = secretKey
