package e2e_test

import (
	"net/http"
	"strings"
	"testing"
)

// TestSealedOverREST is the README's curl path: `oz secret seal` makes a
// blob for one secret, REST creates and rotates with it, a runner receives
// exactly the plaintext, and the blob does not open for another secret.
func TestSealedOverREST(t *testing.T) {
	sys := startSystem(t)
	tm := newTeam(t, sys)
	runner := newRunner(t, sys, "seal-runner", "acme")

	const first, second = "canary-sealed-rest-1a2b3c", "canary-sealed-rest-4d5e6f"
	seal := func(value, name string) string {
		res := ozOK(t, sys, tm.alice, value, "secret", "seal", "--team", name)
		blob := strings.TrimSpace(res.Stdout)
		if !strings.HasPrefix(blob, `{"keyId":`) || strings.Contains(blob, value) {
			t.Fatalf("oz secret seal printed %q", blob)
		}
		return blob
	}
	restJSON(t, sys, tm.alice, "POST", "/v1/teams/acme/secrets",
		`{"secretId":"DB_PASSWORD","sealedValue":`+seal(first, "DB_PASSWORD")+`}`, http.StatusOK)
	execRun(t, sys, runner, tm.alice, map[string]string{"DB_PASSWORD": first})

	restJSON(t, sys, tm.alice, "PATCH", "/v1/teams/acme/secrets/DB_PASSWORD",
		`{"sealedValue":`+seal(second, "DB_PASSWORD")+`}`, http.StatusOK)
	execRun(t, sys, runner, tm.alice, map[string]string{"DB_PASSWORD": second})

	// A blob sealed for DB_PASSWORD is refused for another name, naming the field.
	body := restJSON(t, sys, tm.alice, "POST", "/v1/teams/acme/secrets",
		`{"secretId":"OTHER_PASSWORD","sealedValue":`+seal(first, "DB_PASSWORD")+`}`, http.StatusBadRequest)
	if !strings.Contains(body, "sealed_value.ciphertext") {
		t.Errorf("replayed blob: %s, want an error naming sealed_value.ciphertext", body)
	}
	keys := restJSON(t, sys, tm.bob, "GET", "/v1/sealingKeys", "", http.StatusOK)
	if !strings.Contains(keys, `"kemId":32`) || !strings.Contains(keys, `"kemId":25722`) {
		t.Errorf("sealing keys: %s, want an X25519 and an ML-KEM-768+X25519 key", keys)
	}
	scanDataDir(t, sys, []string{first, second})
}
