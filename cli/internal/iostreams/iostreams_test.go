package iostreams

import (
	"context"
	"io"
	"strings"
	"testing"
)

func TestIsYes(t *testing.T) {
	tests := []struct {
		in   string
		want bool
	}{
		{"y", true}, {"Y", true}, {"yes", true}, {" YES \r", true},
		{"", false}, {"n", false}, {"no", false}, {"yep", false}, {"ye", false},
	}
	for _, tt := range tests {
		if got := IsYes(tt.in); got != tt.want {
			t.Errorf("IsYes(%q) = %v, want %v", tt.in, got, tt.want)
		}
	}
}

func TestReadLineStopsAtNewline(t *testing.T) {
	r := strings.NewReader("first\nsecond\n")
	line, err := readLine(r)
	if err != nil || line != "first" {
		t.Fatalf("got %q, %v; want %q, nil", line, err, "first")
	}
	rest, _ := io.ReadAll(r)
	if got, want := string(rest), "second\n"; got != want {
		t.Errorf("got rest %q, want %q: readLine must not read past the line", got, want)
	}
	if line, err := readLine(strings.NewReader("no newline")); line != "no newline" || err != io.EOF {
		t.Errorf("got %q, %v; want %q, EOF", line, err, "no newline")
	}
}

func TestScriptedPrompter(t *testing.T) {
	p := &ScriptedPrompter{Passwords: [][]byte{[]byte("pw")}, Answers: []string{"y", "n"}}
	ctx := context.Background()
	if b, err := p.Password(ctx, "Value: "); err != nil || string(b) != "pw" {
		t.Errorf("got %q, %v; want pw", b, err)
	}
	if ok, _ := p.Confirm(ctx, "a?"); !ok {
		t.Errorf("got no, want yes")
	}
	if ok, _ := p.Confirm(ctx, "b?"); ok {
		t.Errorf("got yes, want no")
	}
	if _, err := p.Password(ctx, "again"); err == nil {
		t.Errorf("got no error, want one when the script is used up")
	}
	if got, want := strings.Join(p.Prompts, "|"), "Value: |a?|b?|again"; got != want {
		t.Errorf("got prompts %q, want %q", got, want)
	}
}
