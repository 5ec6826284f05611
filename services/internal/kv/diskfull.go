package kv

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"sync/atomic"
	"syscall"

	"github.com/ozsecrets/oz/services/internal/errs"
)

// A full disk.
//
// A write that fails for want of space — the file system is full (ENOSPC)
// or the user's quota is used up (EDQUOT) under a bbolt file, or etcd
// raised its NOSPACE alarm — is not an internal error: the store is sound,
// reads go on, and writes succeed again once there is room, with no
// restart. A Store returns it as DiskFull, of kind
// errs.KindResourceExhausted; OnDiskFull, around a service's store, names
// the store in the message callers see and tells the operator where.

// DiskFullError is the cause of a write that failed for want of space:
// where the store keeps its data (a file, an etcd cluster), and the
// error the store got. Its text is for the operator's log: callers see
// the message of the errs.Error around it.
type DiskFullError struct {
	Where string // "/var/lib/oz/secretstore.db", "etcd https://…"
	Err   error
}

func (e *DiskFullError) Error() string { return e.Where + ": disk full: " + e.Err.Error() }
func (e *DiskFullError) Unwrap() error { return e.Err }

// DiskFullMessage is what callers are told when a write failed for want
// of space and the store has no name (OnDiskFull gives it one).
const DiskFullMessage = "the store's disk is full"

// DiskFull is the error a Store returns from a write that failed for want
// of space at where (err): kind errs.KindResourceExhausted, with
// DiskFullMessage, caused by a *DiskFullError.
func DiskFull(where string, err error) error {
	return &errs.Error{Kind: errs.KindResourceExhausted, Message: DiskFullMessage, Err: &DiskFullError{Where: where, Err: err}}
}

// IsNoSpace reports whether err, from writing or syncing a file, says the
// disk is full: ENOSPC or EDQUOT. bbolt flattens some of its errors into
// text (growing the file: "file resize error: %s"), so the errors' own
// words count too.
func IsNoSpace(err error) bool {
	if err == nil {
		return false
	}
	if errors.Is(err, syscall.ENOSPC) || errors.Is(err, syscall.EDQUOT) {
		return true
	}
	msg := err.Error()
	return strings.Contains(msg, syscall.ENOSPC.Error()) || strings.Contains(msg, syscall.EDQUOT.Error())
}

// OnDiskFull returns s answering a write that failed for want of space
// (DiskFull) with the message "<store>'s disk is full" (store: "the
// secret store"), and logging, for the operator, where and why: once when
// writes start failing so, and once when one succeeds again, rather than
// a line per refused write (the request's own log line says it was
// refused). log nil logs nothing.
func OnDiskFull(s Store, store string, log *slog.Logger) Store {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &diskFullStore{Store: s, msg: store + "'s disk is full", log: log}
}

type diskFullStore struct {
	Store
	msg  string
	log  *slog.Logger
	full atomic.Pointer[DiskFullError] // the last write failed so; nil: it did not
}

func (d *diskFullStore) Apply(ctx context.Context, conds []Cond, writes []Write) error {
	err := d.Store.Apply(ctx, conds, writes)
	var full *DiskFullError
	switch {
	case errors.As(err, &full):
		if d.full.Swap(full) == nil {
			d.log.Error("store: disk full: writes are refused until space is freed; reads go on",
				"store", full.Where, "err", full.Err.Error(), "answer", d.msg)
		}
		return &errs.Error{Kind: errs.KindResourceExhausted, Message: d.msg, Err: err}
	case err == nil && d.full.Load() != nil:
		if was := d.full.Swap(nil); was != nil {
			d.log.Info("store: space is back: writes succeed again", "store", was.Where)
		}
	}
	return err
}
