package kvstore

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
