package cmdutil

import (
	"bufio"
	"encoding/json"
	"io"
	"strings"
	"unicode/utf8"
)

// The writers below print a list page by page, as the server sends it, so
// that its first rows show before its last page is read and memory does
// not grow with the list: a lister calls Row (or Add) for each item of a
// page and Flush at the end of each page.

// TableHoldRows is how many rows a Table holds to set its columns'
// widths: enough for a page of most lists, bounded whatever their length.
const TableHoldRows = 100

// Table writes rows in columns aligned as text/tabwriter would (two spaces
// between columns, the last column not padded), without reading ahead
// past a bound: it holds the first rows (the header included) until it
// has TableHoldRows of them at the end of a page (Flush) or the list ends
// (Close), and those set the columns' widths. After that, rows are written
// as they come; a cell wider than its column pushes the rest of its row
// right and widens the column for the rows after it. A list shorter than
// TableHoldRows therefore prints exactly as tabwriter printed it, however
// many pages it came in.
type Table struct {
	w      *bufio.Writer
	hold   int
	widths []int
	held   [][]string // rows until the widths are set
	fixed  bool       // widths are set: rows are written as they come
}

// NewTable returns a Table writing to w.
func NewTable(w io.Writer) *Table {
	return &Table{w: bufio.NewWriterSize(w, 64<<10), hold: TableHoldRows}
}

// Row adds a row: held, or written once the widths are set.
func (t *Table) Row(cells ...string) {
	t.widen(cells)
	if !t.fixed {
		t.held = append(t.held, cells)
		return
	}
	t.write(cells)
}

// MinWidth makes column col (from 0) at least w wide: for a column whose
// values are known in advance (a scope, a state), so that a later page
// does not push its rows right.
func (t *Table) MinWidth(col, w int) {
	for len(t.widths) <= col {
		t.widths = append(t.widths, 0)
	}
	t.widths[col] = max(t.widths[col], w)
}

// Flush ends a page: once enough rows are held, it sets the widths and
// writes them; it pushes what was written out to the writer.
func (t *Table) Flush() error {
	if !t.fixed && len(t.held) >= t.hold {
		t.fix()
	}
	return t.w.Flush()
}

// Close ends the list: it writes what is still held and flushes.
func (t *Table) Close() error {
	t.fix()
	return t.w.Flush()
}

func (t *Table) fix() {
	if t.fixed {
		return
	}
	t.fixed = true
	for _, cells := range t.held {
		t.write(cells)
	}
	t.held = nil
}

func (t *Table) widen(cells []string) {
	for i, c := range cells {
		if i == len(cells)-1 {
			break // the last cell is not padded
		}
		if i >= len(t.widths) {
			t.widths = append(t.widths, 0)
		}
		t.widths[i] = max(t.widths[i], utf8.RuneCountInString(c))
	}
}

func (t *Table) write(cells []string) {
	for i, c := range cells {
		t.w.WriteString(c)
		if i < len(cells)-1 {
			t.w.WriteString(strings.Repeat(" ", t.widths[i]-utf8.RuneCountInString(c)+2))
		}
	}
	t.w.WriteByte('\n')
}

// JSONArray writes a JSON array element by element, laid out as WriteJSON
// lays out a slice (two-space indent; "[]" when empty), so that a list of
// any length is valid JSON printed in constant memory.
type JSONArray struct {
	w *bufio.Writer
	n int
}

// NewJSONArray returns a JSONArray writing to w. Nothing is written until
// the first Add or Close.
func NewJSONArray(w io.Writer) *JSONArray {
	return &JSONArray{w: bufio.NewWriterSize(w, 64<<10)}
}

// Add writes v as the array's next element.
func (a *JSONArray) Add(v any) error {
	b, err := json.MarshalIndent(v, "  ", "  ")
	if err != nil {
		return err
	}
	if a.n == 0 {
		a.w.WriteString("[\n  ")
	} else {
		a.w.WriteString(",\n  ")
	}
	a.n++
	_, err = a.w.Write(b)
	return err
}

// Flush pushes what was added out to the writer: call it at the end of
// each page.
func (a *JSONArray) Flush() error { return a.w.Flush() }

// Close ends the array (and the line) and flushes it. Call it once, after
// the last Add, and only when the list was read to its end: a list cut by
// an error is left unclosed, so that no reader takes it for whole.
func (a *JSONArray) Close() error {
	if a.n == 0 {
		a.w.WriteString("[]\n")
	} else {
		a.w.WriteString("\n]\n")
	}
	return a.w.Flush()
}
