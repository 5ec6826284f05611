// Package browser_test drives the web app in Debian's Chromium, headless,
// against the real system: ozdev with every service (e2e/harness), and an
// in-process gateway built with gateway/edge's constructor, pointed at the
// same backends, which records every REST request body it receives, so the
// tests can check at the gateway that a value typed in the browser arrives
// sealed, never in plaintext.
//
// One system and one browser serve the whole package; each test opens its
// own tab (a tab's sessionStorage is its own, so each tab signs in
// separately). Chromium is /usr/bin/chromium unless OZ_CHROMIUM names
// another; without it the tests fail, saying how to install it. Screenshots
// of each page go to OZ_SCREENSHOT_DIR, by default out/screenshots at the
// repository root (not committed).
package browser_test

import (
	"fmt"
	"os"
	"testing"

	"github.com/ozsecrets/oz/e2e/harness"
)

// binDir holds the real binaries, built once for the package.
var binDir string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "oz-browser-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binDir = dir
	if err := harness.Build(binDir); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.RemoveAll(dir)
		os.Exit(1)
	}
	code := m.Run()
	shutdown()
	os.RemoveAll(dir)
	os.Exit(code)
}
