package main

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"syscall"
	"time"
)

// A service's output goes to its log file in <data-dir>/logs. When the
// data disk is full those writes fail, and the lines saying why the
// service refuses writes would be lost with them: so while the file
// cannot be written, the lines go to ozdev's own output (the terminal of
// `make run`), each prefixed with the service's name, and back to the file
// once it can be written again. Each move is said once, on ozdev's log.

// retryFile is how often, at most, a log file that failed is tried again:
// each try on a full disk is a failing write.
const retryFile = time.Second

// maxLine bounds how much of a line without a newline is held back: a
// longer one is written in pieces.
const maxLine = 64 << 10

// logFile is where one service's standard output and error go: its log
// file, else term. It is safe for concurrent use; Close writes what is
// held back and closes the file.
type logFile struct {
	path   string // <data-dir>/logs/<service>.log
	name   string // how notices name it: "logs/secretstore.log"
	prefix []byte // "secretstore: ", before each line sent to term
	term   *lockedWriter
	log    *slog.Logger
	retry  time.Duration
	now    func() time.Time

	mu       sync.Mutex
	f        *os.File // nil until opened, or after a failed open
	partial  []byte   // the start of a line not yet ended
	failing  error    // why the file is not written to; nil: it is
	lastTry  time.Time
	diverted int // lines sent to term during this failure
}

// openLogFile opens (creating it if needed) the log file at path for
// appending. A file that cannot be opened (a full disk) is no error: the
// lines go to term until it can.
func openLogFile(path, service string, term *lockedWriter, log *slog.Logger) *logFile {
	w := &logFile{
		path: path, name: filepath.Join(filepath.Base(filepath.Dir(path)), filepath.Base(path)),
		prefix: []byte(service + ": "), term: term, log: log, retry: retryFile, now: time.Now,
	}
	if err := w.open(); err != nil {
		w.fail(err)
	}
	return w
}

func (w *logFile) open() error {
	f, err := os.OpenFile(w.path, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return err
	}
	w.f = f
	return nil
}

// Write takes output of the service and writes each complete line, to
// the file or to term. It never fails: an error would stop the copying
// from the service's pipe, and the service would die of a broken pipe.
func (w *logFile) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	n := len(p)
	for len(p) > 0 {
		i := bytes.IndexByte(p, '\n')
		if i < 0 {
			w.partial = append(w.partial, p...)
			if len(w.partial) >= maxLine {
				w.line(w.partial)
				w.partial = w.partial[:0]
			}
			break
		}
		if len(w.partial) > 0 {
			w.partial = append(w.partial, p[:i+1]...)
			w.line(w.partial)
			w.partial = w.partial[:0]
		} else {
			w.line(p[:i+1])
		}
		p = p[i+1:]
	}
	return n, nil
}

// Close writes a last line without a newline, if any, and closes the
// file.
func (w *logFile) Close() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if len(w.partial) > 0 {
		w.line(append(w.partial, '\n'))
		w.partial = nil
	}
	if w.f == nil {
		return nil
	}
	err := w.f.Close()
	w.f = nil
	return err
}

// line writes one line to the file or, when that fails, to term; w.mu is
// held.
func (w *logFile) line(b []byte) {
	if w.failing != nil && w.now().Sub(w.lastTry) < w.retry {
		w.toTerm(b)
		return
	}
	if err := w.toFile(b); err != nil {
		w.fail(err)
		w.toTerm(b)
		return
	}
	if w.failing != nil {
		w.log.Info(w.name+": writing to the file again", "lines_on_terminal", w.diverted)
		w.failing, w.diverted = nil, 0
	}
}

// toFile appends b to the file, whole or not at all: a write cut short
// (the disk filled up during it) is taken back, so that the file never
// holds half a line.
func (w *logFile) toFile(b []byte) error {
	if w.f == nil {
		if err := w.open(); err != nil {
			return err
		}
	}
	size, err := w.f.Seek(0, io.SeekEnd)
	if err != nil {
		return err
	}
	if n, err := w.f.Write(b); err != nil {
		if n > 0 {
			_ = w.f.Truncate(size)
		}
		return err
	}
	return nil
}

// fail records that the file could not be written, saying so on the
// first failure of a run of them.
func (w *logFile) fail(err error) {
	w.lastTry = w.now()
	if w.failing == nil {
		why := err.Error()
		if errors.Is(err, syscall.ENOSPC) || errors.Is(err, syscall.EDQUOT) {
			why = "disk full"
		}
		w.log.Warn(fmt.Sprintf("%s: %s; writing to the terminal", w.name, why), "err", err.Error())
	}
	w.failing = err
}

func (w *logFile) toTerm(b []byte) {
	w.diverted++
	w.term.writeLine(w.prefix, b)
}

// lockedWriter is ozdev's own output, shared by every service's logFile:
// one line at a time.
type lockedWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (l *lockedWriter) writeLine(prefix, line []byte) {
	l.mu.Lock()
	defer l.mu.Unlock()
	_, _ = l.w.Write(append(append([]byte(nil), prefix...), line...))
}
