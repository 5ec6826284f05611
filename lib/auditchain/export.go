package auditchain

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"strings"

	"google.golang.org/protobuf/encoding/protojson"

	auditv1 "github.com/ozsecrets/oz/proto/gen/oz/audit/v1"
)

// An export is JSON lines: one oz.audit.v1.Event per line, in chain order
// from seq 1, in protobuf's JSON mapping with the proto field names
// ("request_id", "prev_hash" in base64). Every line carries its chain
// fields, so an export is self-describing and verifies without the server.

// MaxLineBytes bounds one line of an export. Events are at most
// 64 KiB in their canonical encoding; their JSON is well below this.
const MaxLineBytes = 4 << 20

var (
	marshalLine   = protojson.MarshalOptions{UseProtoNames: true}
	unmarshalLine = protojson.UnmarshalOptions{} // unknown fields are an error: a verifier must not skip what it cannot hash
)

// MarshalLine returns ev as one export line, newline included.
func MarshalLine(ev *auditv1.Event) ([]byte, error) {
	b, err := marshalLine.Marshal(ev)
	if err != nil {
		return nil, fmt.Errorf("marshal event %s: %w", ev.GetId(), err)
	}
	// protojson never writes a newline in single-line mode.
	return append(b, '\n'), nil
}

// Reader reads the events of an export.
type Reader struct {
	sc   *bufio.Scanner
	line int
}

// NewReader reads an export from r.
func NewReader(r io.Reader) *Reader {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64<<10), MaxLineBytes)
	return &Reader{sc: sc}
}

// LineError is a line of an export that is not an event.
type LineError struct {
	Line int
	Err  error
}

func (e *LineError) Error() string {
	return fmt.Sprintf("line %d: not an audit event: %v", e.Line, e.Err)
}
func (e *LineError) Unwrap() error { return e.Err }

// Next returns the next event, io.EOF after the last, a *LineError for a
// line that is not an event, or the reader's error. Blank lines are
// skipped.
func (r *Reader) Next() (*auditv1.Event, error) {
	for r.sc.Scan() {
		r.line++
		text := r.sc.Bytes()
		if strings.TrimSpace(string(text)) == "" {
			continue
		}
		ev := &auditv1.Event{}
		if err := unmarshalLine.Unmarshal(text, ev); err != nil {
			return nil, &LineError{Line: r.line, Err: err}
		}
		return ev, nil
	}
	if err := r.sc.Err(); err != nil {
		if errors.Is(err, bufio.ErrTooLong) {
			return nil, &LineError{Line: r.line + 1, Err: fmt.Errorf("longer than %d bytes", MaxLineBytes)}
		}
		return nil, err
	}
	return nil, io.EOF
}

// Line returns the number of the line Next read last.
func (r *Reader) Line() int { return r.line }

// Report is the result of verifying an export.
type Report struct {
	// Chain is the chain's parent name ("teams/acme", "system"); "" for an
	// empty export.
	Chain string
	// Verified is how many events verified (those before Break).
	Verified int64
	// Head is the last event that verified: compare it with a head
	// recorded earlier (VerifyChain's) to detect events removed from the
	// end.
	Head Head
	// Break is the first broken link; nil when the export verifies.
	Break *Break
}

// VerifyExport verifies an export read from r, from its first line to its
// last: it must be a whole chain from seq 1. A line that is not an event
// is a break, located at the seq it should have held. Only failures to read
// r are returned as errors.
func VerifyExport(r io.Reader) (*Report, error) {
	rd := NewReader(r)
	v := NewVerifier()
	rep := &Report{}
	for {
		ev, err := rd.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		var le *LineError
		if errors.As(err, &le) {
			rep.Break = &Break{Seq: v.Head().Seq + 1, Reason: le.Error()}
			break
		}
		if err != nil {
			return nil, fmt.Errorf("read export: %w", err)
		}
		if rep.Chain == "" {
			rep.Chain = Name(ev.GetTeam())
		}
		if err := v.Check(ev); err != nil {
			rep.Break = v.Break()
			rep.Break.Reason = fmt.Sprintf("line %d: %s", rd.Line(), rep.Break.Reason)
			break
		}
	}
	rep.Verified, rep.Head = v.Count(), v.Head()
	return rep, nil
}
