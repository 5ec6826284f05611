package audit

import (
	"fmt"
	"unicode/utf8"

	"github.com/ozsecrets/oz/lib/auditchain"
	auditv1 "github.com/ozsecrets/oz/proto/gen/oz/audit/v1"
	"github.com/ozsecrets/oz/services/internal/errs"
)

// Limits of one event. An emitter's outbox refuses an event over them at
// write time (outbox.KV.Apply calls ValidateEvent, as sealing.MemStore
// does), so no event the audit service would refuse ever waits in an
// outbox.
const (
	MaxEventBytes      = 64 << 10 // canonical encoding, details included
	MaxIDLength        = 200
	MaxActionLength    = 100
	MaxNameLength      = 1024 // actor name, resource
	MaxShortLength     = 128  // client, request id, run id
	MaxDetailKeyLength = 256
	MaxBatch           = 1000 // events per AppendEvents
)

// ValidateEvent checks the fields an emitter sets (the chain fields are
// ignored: the audit service sets them). field prefixes the names in
// errors ("events[3]"). It returns an errs.KindInvalid error naming the
// field and the rule, never echoing a detail's value.
func ValidateEvent(field string, ev *auditv1.Event) error {
	f := func(name string) string { return field + "." + name }
	if ev == nil {
		return errs.Field(field, "is required")
	}
	if err := checkToken(field, "id", ev.GetId(), MaxIDLength, true); err != nil {
		return err
	}
	if ev.GetTime() == nil {
		return errs.Field(f("time"), "is required")
	}
	if err := ev.GetTime().CheckValid(); err != nil {
		return errs.Field(f("time"), "is not a valid timestamp")
	}
	if err := checkAction(field, "action", ev.GetAction()); err != nil {
		return err
	}
	if t := ev.GetTeam(); t != "" && !ValidTeamID(t) {
		return errs.Field(f("team"), "must be empty (the system chain) or a team id: [a-z][a-z0-9-]*, at most 63 characters")
	}
	switch ev.GetOutcome() {
	case auditv1.Outcome_OUTCOME_OK, auditv1.Outcome_OUTCOME_DENIED, auditv1.Outcome_OUTCOME_FAILED:
	default:
		return errs.Field(f("outcome"), "must be OUTCOME_OK, OUTCOME_DENIED or OUTCOME_FAILED")
	}
	if _, ok := auditv1.ActorKind_name[int32(ev.GetActor().GetKind())]; !ok {
		return errs.Field(f("actor.kind"), "is not a known actor kind")
	}
	for _, c := range []struct {
		name, v string
		max     int
	}{
		{"actor.name", ev.GetActor().GetName(), MaxNameLength},
		{"actor.client", ev.GetActor().GetClient(), MaxShortLength},
		{"resource", ev.GetResource(), MaxNameLength},
		{"request_id", ev.GetRequestId(), MaxShortLength},
		{"run_id", ev.GetRunId(), MaxShortLength},
	} {
		if err := checkText(field, c.name, c.v, c.max); err != nil {
			return err
		}
	}
	for k, v := range ev.GetDetails() {
		if err := checkText(field, "details", k, MaxDetailKeyLength); err != nil || k == "" {
			return errs.Field(f("details"), "keys must be 1 to %d printable characters", MaxDetailKeyLength)
		}
		if !utf8.ValidString(v) || containsNUL(v) {
			// Never echo the value: it is the one field an emitter could
			// get wrong in a way that matters.
			return errs.Field(fmt.Sprintf("%s[%q]", f("details"), k), "must be UTF-8 text without NUL bytes")
		}
	}
	if n := auditchain.EncodedLen(ev); n > MaxEventBytes {
		return errs.Field(field, "is %d bytes encoded; at most %d (details too large)", n, MaxEventBytes)
	}
	return nil
}

// ValidTeamID reports whether id is a team id: [a-z][a-z0-9-]*, at most
// 63 characters (the resolver's rule).
func ValidTeamID(id string) bool {
	if id == "" || len(id) > 63 || id[0] < 'a' || id[0] > 'z' {
		return false
	}
	for i := 1; i < len(id); i++ {
		c := id[i]
		if !('a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '-') {
			return false
		}
	}
	return true
}

// The checks take the field's name in two parts, joined only for an
// error: every event an outbox takes is validated, and most are valid.

// checkToken allows [A-Za-z0-9._:-], 1..max characters.
func checkToken(prefix, name, s string, max int, required bool) error {
	if s == "" {
		if required {
			return errs.Field(prefix+"."+name, "is required")
		}
		return nil
	}
	if len(s) > max {
		return errs.Field(prefix+"."+name, "must be at most %d characters", max)
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '.' || c == '_' || c == ':' || c == '-') {
			return errs.Field(prefix+"."+name, "must match [A-Za-z0-9._:-]+")
		}
	}
	return nil
}

// checkAction allows "{kind}.{verb}" in [a-z0-9_.-], with at least one dot.
func checkAction(prefix, name, s string) error {
	if s == "" {
		return errs.Field(prefix+"."+name, "is required")
	}
	if len(s) > MaxActionLength {
		return errs.Field(prefix+"."+name, "must be at most %d characters", MaxActionLength)
	}
	dot := false
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '.':
			dot = dot || (i > 0 && i < len(s)-1)
		case 'a' <= c && c <= 'z', '0' <= c && c <= '9', c == '_', c == '-':
		default:
			return errs.Field(prefix+"."+name, `must be "{resource kind}.{verb}" in [a-z0-9_.-], e.g. "secret.create"`)
		}
	}
	if !dot {
		return errs.Field(prefix+"."+name, `must be "{resource kind}.{verb}" in [a-z0-9_.-], e.g. "secret.create"`)
	}
	return nil
}

// checkText allows printable UTF-8 of at most max bytes.
func checkText(prefix, name, s string, max int) error {
	if len(s) > max {
		return errs.Field(prefix+"."+name, "must be at most %d bytes", max)
	}
	if !utf8.ValidString(s) {
		return errs.Field(prefix+"."+name, "must be UTF-8")
	}
	for _, r := range s {
		if r < 0x20 || r == 0x7f {
			return errs.Field(prefix+"."+name, "must not contain control characters")
		}
	}
	return nil
}

func containsNUL(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] == 0 {
			return true
		}
	}
	return false
}
