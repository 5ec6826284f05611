// Package web serves the oz secrets web app: the static files built from
// web/ (repository root) into dist/, embedded so that the gateway binary
// carries them and `go build` needs no Node.js. `make web` rebuilds dist/;
// `make check-web` fails when dist/ is not what the sources build.
//
// Every response carries a strict Content-Security-Policy: scripts, styles
// and connections only from the gateway itself, no inline script or style,
// no framing, no forms posting anywhere, no base URL changes.
package web

import (
	"bytes"
	"crypto/sha256"
	"embed"
	"encoding/base64"
	"fmt"
	"io/fs"
	"net/http"
	"path"
	"time"
)

// ContentSecurityPolicy is the policy of every response of Handler.
const ContentSecurityPolicy = "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; " +
	"img-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"

//go:embed dist
var dist embed.FS

// contentTypes are the only kinds of file served; anything else in dist is
// not.
var contentTypes = map[string]string{
	".html": "text/html; charset=utf-8",
	".js":   "text/javascript; charset=utf-8",
	".css":  "text/css; charset=utf-8",
	".svg":  "image/svg+xml",
}

type file struct {
	name  string
	body  []byte
	ctype string
	etag  string
}

// Handler serves the embedded app.
type Handler struct {
	files map[string]*file // by URL path
}

// New returns a handler for the embedded bundle. It fails if the bundle has
// no index.html (the build did not run).
func New() (*Handler, error) {
	sub, err := fs.Sub(dist, "dist")
	if err != nil {
		return nil, fmt.Errorf("web: %w", err)
	}
	return newHandler(sub)
}

func newHandler(fsys fs.FS) (*Handler, error) {
	h := &Handler{files: make(map[string]*file)}
	entries, err := fs.ReadDir(fsys, ".")
	if err != nil {
		return nil, fmt.Errorf("web: %w", err)
	}
	for _, e := range entries {
		ctype, ok := contentTypes[path.Ext(e.Name())]
		if e.IsDir() || !ok {
			continue
		}
		body, err := fs.ReadFile(fsys, e.Name())
		if err != nil {
			return nil, fmt.Errorf("web: %w", err)
		}
		sum := sha256.Sum256(body)
		h.files["/"+e.Name()] = &file{
			name:  e.Name(),
			body:  body,
			ctype: ctype,
			etag:  `"` + base64.RawURLEncoding.EncodeToString(sum[:18]) + `"`,
		}
	}
	index, ok := h.files["/index.html"]
	if !ok {
		return nil, fmt.Errorf("web: the bundle has no index.html; run `make web`")
	}
	h.files["/"] = index
	return h, nil
}

// ServeHTTP serves GET and HEAD of the bundle's files; "/" is index.html.
// The app routes by URL fragment, so no other path needs index.html.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	hdr := w.Header()
	hdr.Set("Content-Security-Policy", ContentSecurityPolicy)
	hdr.Set("X-Content-Type-Options", "nosniff")
	hdr.Set("Referrer-Policy", "no-referrer")
	hdr.Set("X-Frame-Options", "DENY")
	hdr.Set("Cross-Origin-Opener-Policy", "same-origin")
	hdr.Set("Cross-Origin-Resource-Policy", "same-origin")
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		hdr.Set("Allow", "GET, HEAD")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	f, ok := h.files[r.URL.Path]
	if !ok {
		http.NotFound(w, r)
		return
	}
	hdr.Set("Content-Type", f.ctype)
	// File names carry no content hash: the browser revalidates every time
	// (cheap, by ETag), so a new gateway is never paired with an old script.
	hdr.Set("Cache-Control", "no-cache")
	hdr.Set("ETag", f.etag)
	http.ServeContent(w, r, f.name, time.Time{}, bytes.NewReader(f.body))
}
