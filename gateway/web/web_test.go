package web

import (
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"
	"testing/fstest"
)

func newTestHandler(t *testing.T) *Handler {
	t.Helper()
	h, err := New()
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return h
}

func get(t *testing.T, h http.Handler, method, target string, hdr map[string]string) *httptest.ResponseRecorder {
	t.Helper()
	req := httptest.NewRequest(method, target, nil)
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec
}

func TestServe(t *testing.T) {
	h := newTestHandler(t)
	tests := []struct {
		name, method, path string
		wantCode           int
		wantType           string
	}{
		{"Root", "GET", "/", 200, "text/html; charset=utf-8"},
		{"Index", "GET", "/index.html", 200, "text/html; charset=utf-8"},
		{"Script", "GET", "/app.js", 200, "text/javascript; charset=utf-8"},
		{"Style", "GET", "/style.css", 200, "text/css; charset=utf-8"},
		{"Icon", "GET", "/favicon.svg", 200, "image/svg+xml"},
		{"Head", "HEAD", "/app.js", 200, "text/javascript; charset=utf-8"},
		{"Unknown", "GET", "/secrets", 404, ""},
		{"Nested", "GET", "/dist/app.js", 404, ""},
		{"Post", "POST", "/", 405, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec := get(t, h, tt.method, tt.path, nil)
			if rec.Code != tt.wantCode {
				t.Fatalf("%s %s: got %d, want %d", tt.method, tt.path, rec.Code, tt.wantCode)
			}
			// Every response, errors included, carries the policy.
			for k, want := range map[string]string{
				"Content-Security-Policy": ContentSecurityPolicy,
				"X-Content-Type-Options":  "nosniff",
				"Referrer-Policy":         "no-referrer",
				"X-Frame-Options":         "DENY",
			} {
				if got := rec.Header().Get(k); got != want {
					t.Errorf("%s: got %q, want %q", k, got, want)
				}
			}
			if tt.wantType != "" {
				if got := rec.Header().Get("Content-Type"); got != tt.wantType {
					t.Errorf("Content-Type: got %q, want %q", got, tt.wantType)
				}
				if got := rec.Header().Get("Cache-Control"); got != "no-cache" {
					t.Errorf("Cache-Control: got %q, want no-cache", got)
				}
			}
		})
	}
}

func TestCSPIsStrict(t *testing.T) {
	for _, want := range []string{
		"default-src 'none'", "script-src 'self'", "style-src 'self'", "connect-src 'self'",
		"img-src 'self'", "base-uri 'none'", "form-action 'none'", "frame-ancestors 'none'",
	} {
		if !strings.Contains(ContentSecurityPolicy, want) {
			t.Errorf("policy %q lacks %q", ContentSecurityPolicy, want)
		}
	}
	for _, bad := range []string{"unsafe-inline", "unsafe-eval", "data:", "*"} {
		if strings.Contains(ContentSecurityPolicy, bad) {
			t.Errorf("policy %q allows %q", ContentSecurityPolicy, bad)
		}
	}
}

func TestETag(t *testing.T) {
	h := newTestHandler(t)
	first := get(t, h, "GET", "/app.js", nil)
	etag := first.Header().Get("ETag")
	if etag == "" {
		t.Fatal("no ETag")
	}
	again := get(t, h, "GET", "/app.js", map[string]string{"If-None-Match": etag})
	if again.Code != http.StatusNotModified {
		t.Errorf("If-None-Match: got %d, want 304", again.Code)
	}
}

// TestBundleHasNoInlineCode checks what the policy would block anyway, so
// that a mistake shows here rather than as a blank page: no inline script or
// style in index.html, and no HTML built from strings in the script.
func TestBundleHasNoInlineCode(t *testing.T) {
	h := newTestHandler(t)
	index := h.files["/index.html"].body
	for _, m := range regexp.MustCompile(`(?is)<script[^>]*>`).FindAll(index, -1) {
		if !regexp.MustCompile(`\ssrc=`).Match(m) {
			t.Errorf("index.html: inline script %s", m)
		}
	}
	for _, re := range []string{`(?is)<style`, `(?i)\sstyle=`, `(?i)\son[a-z]+=`, `(?i)javascript:`} {
		if loc := regexp.MustCompile(re).FindIndex(index); loc != nil {
			t.Errorf("index.html: inline code %q", index[loc[0]:min(loc[1]+20, len(index))])
		}
	}
	app := string(h.files["/app.js"].body)
	for _, bad := range []string{"innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval("} {
		if strings.Contains(app, bad) {
			t.Errorf("app.js uses %s", bad)
		}
	}
}

func TestMissingIndex(t *testing.T) {
	_, err := newHandler(fstest.MapFS{"app.js": {Data: []byte("x")}})
	if err == nil || !strings.Contains(err.Error(), "make web") {
		t.Errorf("newHandler without index.html: got %v, want an error naming make web", err)
	}
}
