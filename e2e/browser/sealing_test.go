package browser_test

import (
	"bytes"
	"crypto/hpke"
	"crypto/rand"
	"crypto/tls"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/ozsecrets/oz/gateway/web"
)

// HPKE ids the app and the secret store use.
const (
	kemX25519 = 0x0020 // DHKEM(X25519, HKDF-SHA256)
	kemXWing  = 0x647a // ML-KEM-768 + X25519 (hpke.MLKEM768X25519)
	kdfSHA256 = 0x0001
	aeadAES   = 0x0002
)

// sealedBody is the part of a create or update request body that carries a
// sealed value.
type sealedBody struct {
	SecretID    string `json:"secretId"`
	Description string `json:"description"`
	SealedValue *struct {
		KeyID      string `json:"keyId"`
		Ciphertext []byte `json:"ciphertext"` // base64 in JSON
	} `json:"sealedValue"`
}

func parseSealed(t *testing.T, body []byte) sealedBody {
	t.Helper()
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(body, &raw); err != nil {
		t.Fatalf("request body is not JSON: %v", err)
	}
	if _, ok := raw["value"]; ok {
		t.Errorf("request body has a plaintext \"value\" field, want only sealedValue")
	}
	var b sealedBody
	if err := json.Unmarshal(body, &b); err != nil {
		t.Fatalf("request body: %v", err)
	}
	if b.SealedValue == nil || b.SealedValue.KeyID == "" || len(b.SealedValue.Ciphertext) == 0 {
		t.Fatalf("request body has no sealedValue with keyId and ciphertext: %s", body)
	}
	return b
}

// checkNoPlaintext fails if body holds value in any common encoding: as is,
// any line of it, base64 (standard and URL-safe, padded or not), hex, or
// JSON-escaped.
func checkNoPlaintext(t *testing.T, body []byte, value string) {
	t.Helper()
	pieces := []string{value}
	for line := range strings.SplitSeq(value, "\n") {
		if len(line) >= 6 && line != value {
			pieces = append(pieces, line)
		}
	}
	for _, p := range pieces {
		esc, _ := json.Marshal(p)
		forms := map[string]string{
			"plain":          p,
			"base64":         base64.StdEncoding.EncodeToString([]byte(p)),
			"base64-raw":     base64.RawStdEncoding.EncodeToString([]byte(p)),
			"base64url":      base64.URLEncoding.EncodeToString([]byte(p)),
			"base64url-raw":  base64.RawURLEncoding.EncodeToString([]byte(p)),
			"hex":            hex.EncodeToString([]byte(p)),
			"json-escaped":   strings.Trim(string(esc), `"`),
			"base64-trimmed": strings.TrimRight(base64.StdEncoding.EncodeToString([]byte(p)), "="),
		}
		for kind, f := range forms {
			if bytes.Contains(body, []byte(f)) {
				t.Errorf("the request body holds the plaintext value (%s)", kind)
			}
		}
	}
}

// testValue is a multi-line value with non-ASCII text, unique per call.
func testValue(prefix string) string {
	b := make([]byte, 12)
	_, _ = rand.Read(b)
	return prefix + "-" + hex.EncodeToString(b) + "\nsecond line: ünïcødé ✓ " + hex.EncodeToString(b[:4])
}

// fakeAPI is just enough of the REST API for the app to add a secret, with
// sealing keys the test made, so that what Chromium sealed can be opened
// here with Go's crypto/hpke.
type fakeAPI struct {
	keys []map[string]any

	mu      sync.Mutex
	creates []observed
}

func (f *fakeAPI) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	reply := func(v any) {
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(v)
	}
	switch {
	case r.Method == "GET" && r.URL.Path == "/v1/caller":
		reply(map[string]any{"principal": map[string]any{
			"kind": "PRINCIPAL_KIND_USER", "name": "users/alice", "systemAdmin": false,
			"teams": []any{map[string]any{"team": "acme", "role": "ROLE_ADMIN"}},
		}})
	case r.Method == "GET" && (r.URL.Path == "/v1/teams/acme/secrets" || r.URL.Path == "/v1/users/me/secrets"):
		reply(map[string]any{"secrets": []any{}, "nextPageToken": ""})
	case r.Method == "GET" && r.URL.Path == "/v1/sealingKeys":
		reply(map[string]any{"keys": f.keys})
	case r.Method == "POST" && (r.URL.Path == "/v1/teams/acme/secrets" || r.URL.Path == "/v1/users/alice/secrets"):
		var body bytes.Buffer
		_, _ = body.ReadFrom(r.Body)
		f.mu.Lock()
		f.creates = append(f.creates, observed{Method: r.Method, Path: r.URL.Path, Header: r.Header.Clone(), Body: body.Bytes()})
		f.mu.Unlock()
		reply(map[string]any{"secret": map[string]any{}})
	default:
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusNotFound)
		_, _ = w.Write([]byte(`{"code":5,"message":"Not Found","details":[]}`))
	}
}

func (f *fakeAPI) created() []observed {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]observed(nil), f.creates...)
}

// startFake serves the embedded app and api over TLS with the gateway's
// certificate (which the shared browser accepts).
func startFake(t *testing.T, e *env, api http.Handler) string {
	t.Helper()
	app, err := web.New()
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.Handle("/v1/", api)
	mux.Handle("/", app)
	srv := httptest.NewUnstartedServer(mux)
	srv.TLS = &tls.Config{Certificates: []tls.Certificate{e.gatewayCert}}
	srv.StartTLS()
	t.Cleanup(srv.Close)
	return srv.URL
}

type keyPair struct {
	id   string
	kem  hpke.KEM
	priv hpke.PrivateKey
}

func newKeyPair(t *testing.T, id string, kemID uint16) keyPair {
	t.Helper()
	kem, err := hpke.NewKEM(kemID)
	if err != nil {
		t.Fatal(err)
	}
	priv, err := kem.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	return keyPair{id: id, kem: kem, priv: priv}
}

func (k keyPair) published(current bool) map[string]any {
	return map[string]any{
		"keyId": k.id, "kemId": k.kem.ID(), "kdfId": kdfSHA256, "aeadId": aeadAES,
		"publicKey":  base64.StdEncoding.EncodeToString(k.priv.PublicKey().Bytes()),
		"createTime": "2026-01-02T03:04:05Z", "current": current,
	}
}

// TestSealedInChromiumOpensInGo seals values with the app's own sealing code,
// in Chromium, through its Add secret pane, and opens them in Go with
// crypto/hpke: for DHKEM(X25519) and for ML-KEM-768+X25519 (X-Wing).
func TestSealedInChromiumOpensInGo(t *testing.T) {
	e := setup(t)
	tests := []struct {
		name     string
		current  []uint16 // KEMs of the current keys published
		personal bool
		wantKEM  uint16
	}{
		{name: "X25519", current: []uint16{kemX25519}, wantKEM: kemX25519},
		{name: "MLKEM768X25519", current: []uint16{kemXWing}, wantKEM: kemXWing},
		{name: "BothPrefersPostQuantum", current: []uint16{kemX25519, kemXWing}, wantKEM: kemXWing},
		{name: "Personal", current: []uint16{kemX25519}, personal: true, wantKEM: kemX25519},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			keys := map[string]keyPair{}
			var published []map[string]any
			for i, kem := range tt.current {
				// An older key of the same kind, no longer current, whose
				// private key is thrown away: sealing to it would not open.
				old := newKeyPair(t, fmt.Sprintf("old-%d", i), kem)
				published = append(published, old.published(false))
				k := newKeyPair(t, fmt.Sprintf("key-%d-%04x", i, kem), kem)
				keys[k.id] = k
				published = append(published, k.published(true))
			}
			api := &fakeAPI{keys: published}
			tb := newTab(t, e, startFake(t, e, api))
			tb.signIn("oz_fake_token")

			name := "INTEROP_" + strings.ToUpper(tt.name)
			value := testValue("interop")
			tb.click("#add-secret")
			tb.waitVisible("#add-secret-form")
			tb.typeInto("#secret-name", name)
			tb.typeInto("#secret-value", value)
			if tt.personal {
				tb.click("#scope-personal")
			}
			tb.submit("#add-secret-form", "#pane[hidden]")
			tb.waitText("#status", name+" added")

			creates := api.created()
			if len(creates) != 1 {
				t.Fatalf("creates: got %d, want 1", len(creates))
			}
			c := creates[0]
			owner, wantPath := "teams/acme", "/v1/teams/acme/secrets"
			if tt.personal {
				owner, wantPath = "users/alice", "/v1/users/alice/secrets"
			}
			if c.Path != wantPath {
				t.Errorf("create went to %s, want %s", c.Path, wantPath)
			}
			if got := c.Header.Get("Authorization"); got != "Bearer oz_fake_token" {
				t.Errorf("Authorization: got %q, want the token as a bearer header", got)
			}
			if got := c.Header.Get("Cookie"); got != "" {
				t.Errorf("Cookie: got %q, want none", got)
			}
			checkNoPlaintext(t, c.Body, value)
			b := parseSealed(t, c.Body)
			k, ok := keys[b.SealedValue.KeyID]
			if !ok {
				t.Fatalf("sealed to key %q, want a current key", b.SealedValue.KeyID)
			}
			if k.kem.ID() != tt.wantKEM {
				t.Errorf("sealed with KEM %#04x, want %#04x", k.kem.ID(), tt.wantKEM)
			}
			info := []byte("oz-secret-v1|" + owner + "/secrets/" + name)
			pt, err := hpke.Open(k.priv, hpke.HKDFSHA256(), hpke.AES256GCM(), info, b.SealedValue.Ciphertext)
			if err != nil {
				t.Fatalf("hpke.Open of what Chromium sealed: %v", err)
			}
			if string(pt) != value {
				t.Errorf("opened %q, want %q", pt, value)
			}
			// The info binds owner and name: another secret's does not open it.
			other := []byte("oz-secret-v1|" + owner + "/secrets/OTHER")
			if _, err := hpke.Open(k.priv, hpke.HKDFSHA256(), hpke.AES256GCM(), other, b.SealedValue.Ciphertext); err == nil {
				t.Errorf("opened with another secret's info, want an error")
			}
			tb.checkNoSecurityMessages()
		})
	}

	// With no key the browser can use, nothing is sent: never the plaintext.
	t.Run("NoUsableKey", func(t *testing.T) {
		p256 := newKeyPair(t, "p256", 0x0010)
		api := &fakeAPI{keys: []map[string]any{p256.published(true)}}
		tb := newTab(t, e, startFake(t, e, api))
		tb.signIn("oz_fake_token")
		tb.click("#add-secret")
		tb.typeInto("#secret-name", "NO_KEY")
		tb.typeInto("#secret-value", "never-sent-value")
		tb.click("#add-secret-submit")
		tb.waitText("#add-secret-form-error", "no sealing key")
		if n := len(api.created()); n != 0 {
			t.Errorf("creates: got %d, want none", n)
		}
	})
}
