package secretstore

import (
	"encoding/base64"
	"encoding/json"

	"github.com/ozsecrets/oz/lib/envname"
	"github.com/ozsecrets/oz/services/internal/errs"
)

// Page sizes (AIP-158).
const (
	DefaultPageSize = 100
	MaxPageSize     = 1000
)

// Page is one page of a list.
type Page struct {
	Secrets       []*Secret
	NextPageToken string // "" on the last page
}

// pageToken says where the next page starts: after the secret Name of
// Owner. List is the kind of list it came from, so a token of one list is
// refused by another. Tokens are opaque to callers but not secret: they
// hold nothing the caller could not see in the page itself.
type pageToken struct {
	List  string `json:"l"`
	Owner string `json:"o"`
	After string `json:"a"`
}

func (t pageToken) encode() string {
	b, _ := json.Marshal(t)
	return base64.RawURLEncoding.EncodeToString(b)
}

func errPageToken() error {
	return errs.Field("page_token", "is not a next_page_token of this list (pass it back unchanged, with the same parent)")
}

func decodePageToken(s, list string) (pageToken, error) {
	if s == "" {
		return pageToken{List: list}, nil
	}
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil {
		return pageToken{}, errPageToken()
	}
	var t pageToken
	if err := json.Unmarshal(b, &t); err != nil || t.List != list {
		return pageToken{}, errPageToken()
	}
	if _, err := ParseOwner(t.Owner); err != nil {
		return pageToken{}, errPageToken()
	}
	if _, ok := envname.Syntax(t.After, maxLookupNameLen); !ok {
		return pageToken{}, errPageToken()
	}
	return t, nil
}

func pageSize(n int) (int, error) {
	switch {
	case n < 0:
		return 0, errs.Field("page_size", "must not be negative")
	case n == 0:
		return DefaultPageSize, nil
	case n > MaxPageSize:
		return MaxPageSize, nil
	}
	return n, nil
}
