package e2e_test

import (
	"encoding/json"
	"strings"
	"testing"
)

// tokenIDOf finds, in `oz admin token list --output json`, the id of tok
// (tokens embed their id; the list shows ids, never tokens).
func tokenIDOf(t *testing.T, listJSON, tok string) string {
	t.Helper()
	var items []map[string]any
	if err := json.Unmarshal([]byte(listJSON), &items); err != nil {
		t.Fatalf("token list json: %v\n%s", err, listJSON)
	}
	for _, it := range items {
		for _, key := range []string{"id", "token_id"} {
			if id, _ := it[key].(string); id != "" && strings.Contains(tok, id) {
				return id
			}
		}
	}
	t.Fatalf("no listed token id is part of the token; list: %s", listJSON)
	return ""
}
