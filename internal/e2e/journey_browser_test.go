package e2e_test

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/pocketmolt/pocketmolt/internal/browsertest"
)

// journeyBrowser is a browsertest.Browser on pmd's public address, with the few moves a
// customer's journey needs that the harness leaves to its callers: following a form to the
// next page, waiting on the live page for as long as a container takes, and reading what the
// page shows. Each move is one browsertest Step, so a failure leaves a screenshot and the
// HTML behind; shot keeps a screenshot of a page that is as it should be.
type journeyBrowser struct {
	*browsertest.Browser
	t    *testing.T
	base string   // pmd's public URL
	pngs []string // the screenshots kept on success, in order
}

func newJourneyBrowser(t *testing.T, base string) *journeyBrowser {
	return &journeyBrowser{Browser: browsertest.New(t), t: t, base: base}
}

// open navigates to path and waits for sel.
func (j *journeyBrowser) open(name, path, sel string) {
	j.t.Helper()
	j.Step(name, chromedp.Navigate(j.base+path), chromedp.WaitVisible(chromedp.CSS(sel)))
}

// follow does what a person does on a page (fill), presses button (a CSS selector), waits
// until the browser has loaded the next document — a new one, not the page the button was
// on — and then for sel on it.
func (j *journeyBrowser) follow(name, button, sel string, fill ...chromedp.Action[chromedp.Void]) {
	j.t.Helper()
	actions := append(fill,
		chromedp.Evaluate[chromedp.Void](`window.__pmLeaving = true`),
		chromedp.Click(chromedp.CSS(button)),
		waitJS("the next page", `window.__pmLeaving !== true && document.readyState === 'complete'`),
		chromedp.WaitVisible(chromedp.CSS(sel)),
	)
	j.Step(name, actions...)
}

// waitFor waits up to timeout for the page to make expr true, the page being free to reload
// itself meanwhile.
func (j *journeyBrowser) waitFor(name string, timeout time.Duration, expr string, then ...chromedp.Action[chromedp.Void]) {
	j.t.Helper()
	old := j.StepTimeout
	j.StepTimeout = timeout
	defer func() { j.StepTimeout = old }()
	j.Step(name, append([]chromedp.Action[chromedp.Void]{waitJS(name, expr)}, then...)...)
}

// text returns the visible text of sel.
func (j *journeyBrowser) text(sel string) string {
	j.t.Helper()
	return strings.TrimSpace(j.Text(sel))
}

// eval returns what expr gives on the page now, as a string.
func (j *journeyBrowser) eval(expr string) string {
	j.t.Helper()
	var v string
	j.Step("evaluate "+expr, chromedp.Func(func(ctx context.Context, t *chromedp.Target) error {
		var err error
		v, err = chromedp.Evaluate[string](`String(`+expr+`)`)(ctx, t)
		return err
	}))
	return v
}

// shot keeps a screenshot of the page as it is, for people to look at.
func (j *journeyBrowser) shot(name string) {
	j.t.Helper()
	j.pngs = append(j.pngs, j.Screenshot(name))
}

// fail saves what the page looks like and fails the test: for checks made in Go on what a
// step read, which the harness's own failure artifacts do not cover.
func (j *journeyBrowser) fail(format string, args ...any) {
	j.t.Helper()
	path := j.Screenshot("FAILED")
	j.t.Fatalf(format+"\n\tscreenshot: %s", append(args, path)...)
}

// waitJS polls expr (a JavaScript boolean expression) until it is true. Errors while the
// browser is between documents (no execution context yet, a reload under way) are expected
// and only remembered, to be told if the wait runs out.
func waitJS(what, expr string) chromedp.Action[chromedp.Void] {
	return chromedp.Func(func(ctx context.Context, t *chromedp.Target) error {
		var lastErr error
		for {
			ok, err := chromedp.Evaluate[bool](`(function(){ try { return !!(`+expr+`); } catch (e) { return false; } })()`)(ctx, t)
			if err == nil && ok {
				return nil
			}
			if err != nil {
				lastErr = err
			}
			select {
			case <-ctx.Done():
				if lastErr != nil {
					return fmt.Errorf("waiting for %s (%s); last error: %v: %w", what, expr, lastErr, ctx.Err())
				}
				return fmt.Errorf("waiting for %s (%s): %w", what, expr, ctx.Err())
			case <-time.After(100 * time.Millisecond):
			}
		}
	})
}

// textHas checks that sel is visible and that its text holds each of want.
func textHas(sel string, want ...string) chromedp.Action[chromedp.Void] {
	return chromedp.Func(func(ctx context.Context, t *chromedp.Target) error {
		got, err := chromedp.Text(chromedp.CSS(sel), chromedp.NodeVisible)(ctx, t)
		if err != nil {
			return fmt.Errorf("text of %s: %w", sel, err)
		}
		var missing []string
		for _, w := range want {
			if !strings.Contains(got, w) {
				missing = append(missing, strconv.Quote(w))
			}
		}
		if len(missing) > 0 {
			return fmt.Errorf("%s says %q, without %s", sel, got, strings.Join(missing, ", "))
		}
		return nil
	})
}

// valueIs checks the current value of the form control sel.
func valueIs(sel, want string) chromedp.Action[chromedp.Void] {
	return chromedp.Func(func(ctx context.Context, t *chromedp.Target) error {
		got, err := chromedp.Value(chromedp.CSS(sel))(ctx, t)
		if err != nil {
			return fmt.Errorf("value of %s: %w", sel, err)
		}
		if got != want {
			return fmt.Errorf("%s holds %q, want %q", sel, got, want)
		}
		return nil
	})
}

// absent checks that nothing matches sel on the page now (without waiting for it to go).
func absent(sel string) chromedp.Action[chromedp.Void] {
	return chromedp.Func(func(ctx context.Context, t *chromedp.Target) error {
		n, err := chromedp.Evaluate[int](`document.querySelectorAll(`+strconv.Quote(sel)+`).length`)(ctx, t)
		if err != nil {
			return err
		}
		if n != 0 {
			return fmt.Errorf("%d elements match %s; want none", n, sel)
		}
		return nil
	})
}

// js runs a statement on the page.
func js(stmt string) chromedp.Action[chromedp.Void] {
	return chromedp.Evaluate[chromedp.Void](stmt)
}
