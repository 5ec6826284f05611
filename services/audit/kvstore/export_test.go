package kvstore

// SetUpgradeHooks sets afterCopy and boltCopyBatch for a test; restore
// puts them back.
func SetUpgradeHooks(after func() error, batch int) (restore func()) {
	a, b := afterCopy, boltCopyBatch
	afterCopy = after
	if batch > 0 {
		boltCopyBatch = batch
	}
	return func() { afterCopy, boltCopyBatch = a, b }
}
