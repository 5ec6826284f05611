package audit_test

import (
	"errors"
	"strings"
	"testing"

	"google.golang.org/protobuf/types/known/timestamppb"

	auditv1 "github.com/ozsecrets/oz/proto/gen/oz/audit/v1"
	"github.com/ozsecrets/oz/services/audit"
	"github.com/ozsecrets/oz/services/internal/errs"
)

func valid() *auditv1.Event {
	return &auditv1.Event{
		Id: "resolver-0011223344556677-0000000000000001", Time: timestamppb.Now(),
		Actor:  &auditv1.Actor{Kind: auditv1.ActorKind_ACTOR_KIND_RUNNER, Name: "runners/ci", Client: "runner"},
		Action: "run.resolve", Resource: "teams/acme/runs/r1", Team: "acme", Outcome: auditv1.Outcome_OUTCOME_OK,
		RequestId: "req-1", RunId: "r1",
		Details: map[string]string{"injected.API_KEY": "3", "unresolved.DB_URL": "not_found", "note": "multi\nline ok"},
	}
}

func TestValidateEvent(t *testing.T) {
	tests := []struct {
		name  string
		edit  func(*auditv1.Event)
		field string // "" : valid
	}{
		{"Valid", func(*auditv1.Event) {}, ""},
		{"SystemChain", func(e *auditv1.Event) { e.Team = "" }, ""},
		{"NoActor", func(e *auditv1.Event) { e.Actor = nil }, ""},
		{"NoID", func(e *auditv1.Event) { e.Id = "" }, "ev.id"},
		{"IDWithSpace", func(e *auditv1.Event) { e.Id = "resolver 1" }, "ev.id"},
		{"IDTooLong", func(e *auditv1.Event) { e.Id = strings.Repeat("a", audit.MaxIDLength+1) }, "ev.id"},
		{"NoTime", func(e *auditv1.Event) { e.Time = nil }, "ev.time"},
		{"BadTime", func(e *auditv1.Event) { e.Time = &timestamppb.Timestamp{Nanos: -1} }, "ev.time"},
		{"NoAction", func(e *auditv1.Event) { e.Action = "" }, "ev.action"},
		{"ActionWithoutVerb", func(e *auditv1.Event) { e.Action = "secret" }, "ev.action"},
		{"ActionTrailingDot", func(e *auditv1.Event) { e.Action = "secret." }, "ev.action"},
		{"ActionUpper", func(e *auditv1.Event) { e.Action = "Secret.Create" }, "ev.action"},
		{"BadTeam", func(e *auditv1.Event) { e.Team = "teams/acme" }, "ev.team"},
		{"NoOutcome", func(e *auditv1.Event) { e.Outcome = auditv1.Outcome_OUTCOME_UNSPECIFIED }, "ev.outcome"},
		{"UnknownActorKind", func(e *auditv1.Event) { e.Actor.Kind = 99 }, "ev.actor.kind"},
		{"ControlInResource", func(e *auditv1.Event) { e.Resource = "a\nb" }, "ev.resource"},
		{"LongRunID", func(e *auditv1.Event) { e.RunId = strings.Repeat("r", audit.MaxShortLength+1) }, "ev.run_id"},
		{"EmptyDetailKey", func(e *auditv1.Event) { e.Details[""] = "x" }, "ev.details"},
		{"NULInDetail", func(e *auditv1.Event) { e.Details["k"] = "a\x00" }, `ev.details["k"]`},
		{"TooLarge", func(e *auditv1.Event) { e.Details["big"] = strings.Repeat("x", audit.MaxEventBytes) }, "ev"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ev := valid()
			tt.edit(ev)
			err := audit.ValidateEvent("ev", ev)
			if tt.field == "" {
				if err != nil {
					t.Fatalf("got %v, want nil", err)
				}
				return
			}
			var e *errs.Error
			if !errors.As(err, &e) || e.Kind != errs.KindInvalid || e.Field != tt.field {
				t.Fatalf("got %#v, want an invalid-argument error about %s", err, tt.field)
			}
			if strings.Contains(err.Error(), "a\x00") {
				t.Errorf("the error echoes a detail's value: %q", err)
			}
		})
	}
}

func TestParseParent(t *testing.T) {
	for in, want := range map[string]string{"teams/acme": "acme", "system": "", "teams/a-1": "a-1"} {
		if got, err := audit.ParseParent("parent", in); err != nil || got != want {
			t.Errorf("ParseParent(%q): got %q, %v; want %q", in, got, err, want)
		}
	}
	for _, bad := range []string{"", "teams/", "teams/Acme", "acme", "users/alice", "teams/acme/secrets/x", "System"} {
		if _, err := audit.ParseParent("parent", bad); !errors.Is(err, errs.Invalid) {
			t.Errorf("ParseParent(%q): got %v, want invalid", bad, err)
		}
	}
}
