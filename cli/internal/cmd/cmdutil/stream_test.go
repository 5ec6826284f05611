package cmdutil_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"text/tabwriter"

	"github.com/ozsecrets/oz/cli/internal/cmd/cmdutil"
)

// A table shorter than TableHoldRows prints as tabwriter prints it,
// however many pages it came in.
func TestTableShortIsTabwriter(t *testing.T) {
	rows := [][]string{{"NAME", "SCOPE", "LAST"}, {"A", "personal", "now"}, {"LONGER_NAME", "team", "never"}, {"é", "-", ""}}
	var want bytes.Buffer
	tw := tabwriter.NewWriter(&want, 0, 8, 2, ' ', 0)
	for _, r := range rows {
		fmt.Fprintln(tw, strings.Join(r, "\t"))
	}
	tw.Flush()

	var got bytes.Buffer
	tab := cmdutil.NewTable(&got)
	for _, r := range rows {
		tab.Row(r...)
		if err := tab.Flush(); err != nil { // a page per row
			t.Fatal(err)
		}
	}
	if got.Len() != 0 {
		t.Errorf("got %q before Close, want nothing: fewer rows than TableHoldRows are held", got.String())
	}
	if err := tab.Close(); err != nil {
		t.Fatal(err)
	}
	if got.String() != want.String() {
		t.Errorf("got\n%s\nwant\n%s", got.String(), want.String())
	}
}

// Past TableHoldRows, rows are written at the end of each page with the
// widths of the held rows; a wider cell later pushes only its own row and
// widens its column for the rows after it.
func TestTableLongStreams(t *testing.T) {
	var got bytes.Buffer
	tab := cmdutil.NewTable(&got)
	tab.Row("NAME", "N")
	for i := range cmdutil.TableHoldRows {
		tab.Row(fmt.Sprintf("R%03d", i), "x")
	}
	if err := tab.Flush(); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(got.String(), "\n")
	if len(lines) != cmdutil.TableHoldRows+2 || lines[0] != "NAME  N" || lines[1] != "R000  x" {
		t.Fatalf("after the first page: got %d lines starting %q, want %d starting \"NAME  N\", \"R000  x\"", len(lines), lines[:2], cmdutil.TableHoldRows+2)
	}
	tab.Row("WIDER", "y")
	tab.Row("R", "z")
	if err := tab.Close(); err != nil {
		t.Fatal(err)
	}
	if tail := got.String()[len(got.String())-len("WIDER  y\nR      z\n"):]; tail != "WIDER  y\nR      z\n" {
		t.Errorf("got tail %q, want %q", tail, "WIDER  y\nR      z\n")
	}
}

// A JSON array written element by element is what WriteJSON writes of the
// slice, empty included.
func TestJSONArrayIsWriteJSON(t *testing.T) {
	type item struct {
		Name string   `json:"name"`
		Tags []string `json:"tags"`
	}
	for _, items := range [][]any{
		{},
		{item{Name: "a"}},
		{item{Name: "a<b>", Tags: []string{"x", "y"}}, json.RawMessage(`{"k": [1, 2]}`), item{}},
	} {
		var want, got bytes.Buffer
		if err := cmdutil.WriteJSON(&want, items); err != nil {
			t.Fatal(err)
		}
		arr := cmdutil.NewJSONArray(&got)
		for _, it := range items {
			if err := arr.Add(it); err != nil {
				t.Fatal(err)
			}
			if err := arr.Flush(); err != nil {
				t.Fatal(err)
			}
		}
		if err := arr.Close(); err != nil {
			t.Fatal(err)
		}
		if got.String() != want.String() {
			t.Errorf("got\n%s\nwant\n%s", got.String(), want.String())
		}
	}
}
