package resolver

import (
	"encoding/base64"
	"strings"

	"github.com/ozsecrets/oz/services/internal/errs"
)

// Page sizes of List operations.
const (
	DefaultPageSize = 50
	MaxPageSize     = 1000
)

// Page asks for one page of a list (AIP-158): at most Size items (0: the
// default; above MaxPageSize: MaxPageSize), after the position Token, which
// is "" for the first page or a next-page token from the previous page.
type Page struct {
	Size  int
	Token string
}

// Cursor validates p and returns the page size and the id to continue after.
func (p Page) Cursor() (size int, after string, err error) {
	switch {
	case p.Size < 0:
		return 0, "", errs.Field("page_size", "must not be negative")
	case p.Size == 0:
		size = DefaultPageSize
	case p.Size > MaxPageSize:
		size = MaxPageSize
	default:
		size = p.Size
	}
	if p.Token == "" {
		return size, "", nil
	}
	b, err := base64.RawURLEncoding.DecodeString(p.Token)
	after = string(b)
	if err != nil || after == "" || len(after) > 2*MaxIDLength || strings.ContainsAny(after, "/\x00") {
		return 0, "", errs.Field("page_token", "must be a next_page_token from a previous response")
	}
	return size, after, nil
}

// PageOf cuts items (fetched with size+1 as the limit) to size and returns
// the next-page token: the id of the last item kept, when more follow.
func PageOf[T any](items []T, size int, id func(T) string) ([]T, string) {
	if len(items) <= size {
		return items, ""
	}
	items = items[:size]
	return items, base64.RawURLEncoding.EncodeToString([]byte(id(items[size-1])))
}

// AfterKey is the Scan position after id in the collection under prefix.
func AfterKey(prefix, id string) string {
	if id == "" {
		return ""
	}
	return prefix + id
}
