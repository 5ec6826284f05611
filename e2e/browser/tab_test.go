package browser_test

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	cdplog "github.com/chromedp/cdproto/log"
	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"

	"github.com/ozsecrets/oz/e2e/harness"
)

// actionTimeout bounds one step (a wait, a click) in a tab.
const actionTimeout = 30 * time.Second

// tab is one browser tab. Its helpers fail the test, with what the page
// showed, when a step fails.
type tab struct {
	t *testing.T
	*tabState
}

// tabState is what a tab keeps across the (sub)tests that use it.
type tabState struct {
	ctx  context.Context
	base string // the app's URL

	mu       sync.Mutex
	security []string // CSP and other security messages
	errors   []string // uncaught exceptions and error-level console messages
}

// in returns the tab for use in the (sub)test t, so that its helpers fail
// that test.
func (tb *tab) in(t *testing.T) *tab { return &tab{t: t, tabState: tb.tabState} }

// newTab opens a tab in the shared browser, on the app at base.
func newTab(t *testing.T, e *env, base string) *tab {
	t.Helper()
	ctx, cancel := chromedp.NewContext(e.browser)
	t.Cleanup(cancel)
	if err := chromedp.Do(ctx); err != nil { // opens the tab
		t.Fatalf("open tab: %v", err)
	}
	tb := &tab{t: t, tabState: &tabState{ctx: ctx, base: base}}
	entries := chromedp.Events(ctx, cdplog.EntryAdded)
	exceptions := chromedp.Events(ctx, runtime.ExceptionThrown)
	go func() {
		for ev, err := range entries {
			if err != nil {
				return
			}
			e := ev.Entry
			line := fmt.Sprintf("%s %s: %s", e.Source, e.Level, e.Text)
			tb.mu.Lock()
			if e.Source == cdplog.EntrySourceSecurity || strings.Contains(e.Text, "Content Security Policy") {
				tb.security = append(tb.security, line)
			}
			if e.Level == cdplog.EntryLevelError {
				tb.errors = append(tb.errors, line)
			}
			tb.mu.Unlock()
		}
	}()
	go func() {
		for ev, err := range exceptions {
			if err != nil {
				return
			}
			d := ev.ExceptionDetails
			msg := d.Text
			if d.Exception != nil && d.Exception.Description != "" {
				msg += " " + d.Exception.Description
			}
			tb.mu.Lock()
			tb.errors = append(tb.errors, "exception: "+msg)
			tb.mu.Unlock()
		}
	}()
	return tb
}

// do runs steps with a timeout, failing the test with the page's state.
func (tb *tab) do(what string, steps ...chromedp.Action[chromedp.Void]) {
	tb.t.Helper()
	ctx, cancel := context.WithTimeout(tb.ctx, actionTimeout)
	defer cancel()
	if err := chromedp.Do(ctx, steps...); err != nil {
		tb.fail("%s: %v", what, err)
	}
}

// fail ends the test with what the page shows and what it logged.
func (tb *tab) fail(format string, args ...any) {
	tb.t.Helper()
	ctx, cancel := context.WithTimeout(tb.ctx, 5*time.Second)
	defer cancel()
	text, _ := chromedp.Run(ctx, chromedp.Evaluate[string](`document.body ? document.body.innerText : ""`))
	url, _ := chromedp.Run(ctx, chromedp.Location())
	tb.screenshot("failure-" + sanitize(tb.t.Name()))
	tb.mu.Lock()
	logs := append(append([]string(nil), tb.errors...), tb.security...)
	tb.mu.Unlock()
	tb.t.Fatalf(format+"\n--- page %s:\n%s\n--- browser log:\n%s", append(args, url, text, strings.Join(logs, "\n"))...)
}

func sanitize(s string) string {
	return strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' {
			return r
		}
		return '-'
	}, s)
}

// open loads the app at the given fragment ("#/secrets").
func (tb *tab) open(fragment string) {
	tb.t.Helper()
	url := tb.base + "/" + fragment
	ctx, cancel := context.WithTimeout(tb.ctx, actionTimeout)
	defer cancel()
	if cur, _ := chromedp.Run(ctx, chromedp.Location()); cur == url {
		// Same URL, fragment and all: Navigate would not load it again.
		tb.do("reload "+fragment, chromedp.Reload())
		return
	}
	tb.do("open "+fragment, chromedp.Navigate(url))
}

// signIn signs in with token on a fresh load of the app.
func (tb *tab) signIn(token string) {
	tb.t.Helper()
	tb.open("")
	tb.do("sign in",
		chromedp.WaitVisible(chromedp.CSS("#token")),
		chromedp.SendKeys(chromedp.CSS("#token"), token),
		chromedp.Click(chromedp.CSS("#sign-in-submit")),
		chromedp.WaitVisible(chromedp.CSS("#nav-secrets")),
	)
}

func (tb *tab) waitVisible(sel string) {
	tb.t.Helper()
	tb.do("wait for "+sel, chromedp.WaitVisible(chromedp.CSS(sel)))
}

func (tb *tab) click(sel string) {
	tb.t.Helper()
	tb.do("click "+sel, chromedp.Click(chromedp.CSS(sel)))
}

// typeInto clears the field and types text into it, as a person would.
func (tb *tab) typeInto(sel, text string) {
	tb.t.Helper()
	clear := chromedp.Evaluate[chromedp.Void](fmt.Sprintf(`document.querySelector(%s).value = ""`, js(sel)))
	tb.do("type into "+sel, chromedp.WaitVisible(chromedp.CSS(sel)), clear, chromedp.SendKeys(chromedp.CSS(sel), text))
}

// selectOption chooses value in the select sel, as a person would (the
// page hears the change).
func (tb *tab) selectOption(sel, value string) {
	tb.t.Helper()
	tb.do("choose "+value+" in "+sel,
		chromedp.WaitVisible(chromedp.CSS(sel)),
		chromedp.Evaluate[chromedp.Void](fmt.Sprintf(`(() => {
			const s = document.querySelector(%s);
			if (![...s.options].some(o => o.value === %s)) throw new Error("no option " + %s);
			s.value = %s;
			s.dispatchEvent(new Event("change", { bubbles: true }));
		})()`, js(sel), js(value), js(value), js(value))),
	)
}

// text is the text of the first element sel matches.
func (tb *tab) text(sel string) string {
	tb.t.Helper()
	ctx, cancel := context.WithTimeout(tb.ctx, actionTimeout)
	defer cancel()
	s, err := chromedp.Run(ctx, chromedp.TextContent(chromedp.CSS(sel)))
	if err != nil {
		tb.fail("text of %s: %v", sel, err)
	}
	return s
}

// eval evaluates a JavaScript expression and decodes its value.
func eval[T any](tb *tab, expr string) T {
	tb.t.Helper()
	ctx, cancel := context.WithTimeout(tb.ctx, actionTimeout)
	defer cancel()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[T](expr))
	if err != nil {
		tb.fail("evaluate %s: %v", expr, err)
	}
	return v
}

// js quotes s as a JavaScript string literal.
func js(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}

// exists reports whether sel matches an element now.
func (tb *tab) exists(sel string) bool {
	tb.t.Helper()
	return eval[bool](tb, fmt.Sprintf(`document.querySelector(%s) !== null`, js(sel)))
}

// waitFor waits until the JavaScript predicate is true.
func (tb *tab) waitFor(what, predicate string) {
	tb.t.Helper()
	tb.do("wait for "+what, chromedp.Poll[chromedp.Void](predicate, chromedp.WithPollingTimeout(actionTimeout)))
}

// waitGone waits until sel matches nothing.
func (tb *tab) waitGone(sel string) {
	tb.t.Helper()
	tb.waitFor(sel+" to go", fmt.Sprintf(`document.querySelector(%s) === null`, js(sel)))
}

// waitText waits until the element sel matches holds want in its text.
func (tb *tab) waitText(sel, want string) {
	tb.t.Helper()
	tb.waitFor(fmt.Sprintf("%s to contain %q", sel, want),
		fmt.Sprintf(`(() => { const el = document.querySelector(%s); return !!el && el.textContent.includes(%s); })()`, js(sel), js(want)))
}

// submit clicks the submit button and waits until done matches an element
// or the form shows an error, failing the test with the error in that case.
func (tb *tab) submit(form, done string) {
	tb.t.Helper()
	tb.click(form + ` button[type="submit"]`)
	tb.waitFor(done+" or an error", fmt.Sprintf(
		`document.querySelector(%s) !== null || document.querySelector(%s) !== null`,
		js(done), js(form+` .form-error:not([hidden]), `+form+` .field-error:not([hidden])`)))
	if !tb.exists(done) {
		tb.fail("submit %s: the form shows an error", form)
	}
}

// screenshot writes a PNG of the page to the screenshot folder.
func (tb *tab) screenshot(name string) {
	tb.t.Helper()
	dir := screenshotDir()
	if dir == "" {
		return
	}
	ctx, cancel := context.WithTimeout(tb.ctx, actionTimeout)
	defer cancel()
	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		tb.t.Logf("screenshot %s: %v", name, err)
		return
	}
	path := filepath.Join(dir, name+".png")
	if err := os.WriteFile(path, png, 0o644); err != nil {
		tb.t.Logf("screenshot %s: %v", name, err)
	}
}

// screenshotDir is $OZ_SCREENSHOT_DIR, else out/screenshots at the
// repository root (ignored by git); "" when it cannot be made. Failure
// screenshots of an earlier run are removed the first time.
var screenshotDir = sync.OnceValue(func() string {
	dir := os.Getenv("OZ_SCREENSHOT_DIR")
	if dir == "" {
		root, err := harness.RepoRoot()
		if err != nil {
			return ""
		}
		dir = filepath.Join(root, "out", "screenshots")
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return ""
	}
	old, _ := filepath.Glob(filepath.Join(dir, "failure-*.png"))
	for _, f := range old {
		_ = os.Remove(f)
	}
	return dir
})

// checkNoSecurityMessages fails the test if the browser reported a CSP
// violation (or another security message) in this tab.
func (tb *tab) checkNoSecurityMessages() {
	tb.t.Helper()
	tb.mu.Lock()
	defer tb.mu.Unlock()
	if len(tb.security) > 0 {
		tb.t.Errorf("the browser reported security messages (the app must run under its CSP):\n%s", strings.Join(tb.security, "\n"))
	}
}

// securityMessages returns the security messages so far.
func (tb *tab) securityMessages() []string {
	tb.mu.Lock()
	defer tb.mu.Unlock()
	return append([]string(nil), tb.security...)
}

// exceptions returns the uncaught exceptions so far.
func (tb *tab) exceptions() []string {
	tb.mu.Lock()
	defer tb.mu.Unlock()
	var out []string
	for _, e := range tb.errors {
		if strings.HasPrefix(e, "exception: ") {
			out = append(out, e)
		}
	}
	return out
}
