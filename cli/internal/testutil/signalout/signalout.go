// Package signalout is a standard output for tests that must know when a
// command has printed something (e.g. a list's first page) while the
// command still runs: a fake server can hold back its next answer until
// then.
package signalout

import (
	"bytes"
	"strings"
	"sync"
)

// Buffer collects what is written to it, safely for concurrent use; Seen
// is closed once what was written contains the text it waits for.
type Buffer struct {
	mu   sync.Mutex
	buf  bytes.Buffer
	want string
	seen chan struct{}
	done bool
}

// New returns a Buffer that waits for want.
func New(want string) *Buffer { return &Buffer{want: want, seen: make(chan struct{})} }

// Seen is closed once want has been written.
func (b *Buffer) Seen() <-chan struct{} { return b.seen }

func (b *Buffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	n, err := b.buf.Write(p)
	if !b.done && strings.Contains(b.buf.String(), b.want) {
		b.done = true
		close(b.seen)
	}
	return n, err
}

// String is everything written so far.
func (b *Buffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
