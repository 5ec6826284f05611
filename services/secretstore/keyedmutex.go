package secretstore

import (
	"hash/maphash"
	"sync"
)

// keyedMutex is a striped lock: keys hashing to one stripe share a mutex.
// The zero value is ready to use.
type keyedMutex struct {
	seed    maphash.Seed
	once    sync.Once
	stripes [64]sync.Mutex
}

// lock locks key's stripe and returns its unlock.
func (k *keyedMutex) lock(key string) (unlock func()) {
	k.once.Do(func() { k.seed = maphash.MakeSeed() })
	m := &k.stripes[maphash.String(k.seed, key)%uint64(len(k.stripes))]
	m.Lock()
	return m.Unlock
}
