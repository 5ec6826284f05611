package audit

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"

	"github.com/ozsecrets/oz/services/internal/errs"
)

const (
	tokenList   = "events"
	tokenExport = "export"
)

// pageToken says where the next page starts. It names the list, the
// parent and (for ListEvents) a fingerprint of the filters, so that a
// token is refused by another list, another chain or other filters.
// Tokens are opaque to callers but not secret.
type pageToken struct {
	List   string `json:"l"`
	Parent string `json:"p"`
	Filter string `json:"f,omitempty"`
	Seq    int64  `json:"s"` // ListEvents: before this seq; ExportEvents: from it
}

func (t pageToken) encode() string {
	b, _ := json.Marshal(t)
	return base64.RawURLEncoding.EncodeToString(b)
}

func decodeToken(s, list, parent, filter string) (pageToken, error) {
	if s == "" {
		return pageToken{List: list, Parent: parent, Filter: filter}, nil
	}
	bad := errs.Field("page_token", "is not a next_page_token of this list (pass it back unchanged, with the same parent and filters)")
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil {
		return pageToken{}, bad
	}
	var t pageToken
	if err := json.Unmarshal(b, &t); err != nil || t.List != list || t.Parent != parent || t.Filter != filter || t.Seq < 1 {
		return pageToken{}, bad
	}
	return t, nil
}

// fingerprint identifies the filters in a page token.
func (f Filter) fingerprint() string {
	h := sha256.New()
	fmt.Fprintf(h, "%d|%d|%q|%q|%q|%q|%d", f.Start.UnixNano(), f.End.UnixNano(), f.Actor, f.Action, f.Resource, f.RunID, f.Outcome)
	return hex.EncodeToString(h.Sum(nil)[:8])
}

func pageSize(n, def int) (int, error) {
	switch {
	case n < 0:
		return 0, errs.Field("page_size", "must not be negative")
	case n == 0:
		return def, nil
	case n > MaxPageSize:
		return MaxPageSize, nil
	}
	return n, nil
}
