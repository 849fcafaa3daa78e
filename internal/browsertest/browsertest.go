// Package browsertest drives a real headless Chromium from tests, one browser per test, and
// leaves a full-page screenshot and the page's HTML behind when a step of a journey fails, so
// that a failure in CI can be seen rather than guessed at.
package browsertest

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// DefaultStepTimeout is how long one Step, Text or Screenshot may take before it fails.
// Long enough for a page that waits on a container to start; short enough that a hung
// journey fails with a screenshot instead of at the test binary's own deadline.
const DefaultStepTimeout = 30 * time.Second

// closeTimeout bounds the browser's graceful close at the end of a test.
const closeTimeout = 10 * time.Second

// artifactTimeout bounds the screenshot and HTML taken after a step failed, which may have
// failed because its own time ran out.
const artifactTimeout = 10 * time.Second

// execNames are the Chromium executables New looks for on PATH, Debian's first.
var execNames = []string{"chromium", "chromium-browser", "google-chrome", "google-chrome-stable"}

// Browser is one headless Chromium with one tab, started for one test. It is not safe for
// concurrent use: a journey is a sequence of steps.
type Browser struct {
	// StepTimeout limits each Step, Text and Screenshot call; New sets DefaultStepTimeout.
	StepTimeout time.Duration

	tb    testing.TB
	ctx   context.Context // the tab's chromedp context; lives until the test's cleanup
	steps int             // numbers the artifacts, so that a folder lists them in order
}

// New starts headless Chromium for one test — Debian's chromium from PATH, with a fresh
// temporary profile that is deleted afterwards, without the sandbox when run as root (Chromium
// refuses to start as root otherwise) — and closes it in t.Cleanup. When no Chromium is
// installed the test is skipped, unless the environment variable CI is set: there the missing
// browser is an error, so that a CI machine without it cannot pass by skipping.
func New(t *testing.T) *Browser {
	t.Helper()
	return newBrowser(t)
}

func newBrowser(t testing.TB) *Browser {
	t.Helper()
	path, err := findChromium()
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("browsertest: %v; CI is set, so browser tests must run: install Debian's chromium (.ci/run does)", err)
		}
		t.Skipf("browsertest: %v (install Debian's chromium to run this test)", err)
	}
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(path),
		// A fixed window size makes screenshots of one journey comparable between runs.
		chromedp.WindowSize(1280, 900),
		chromedp.DisableGPU,
	)
	if os.Geteuid() == 0 {
		opts = append(opts, chromedp.NoSandbox)
	}
	// The browser outlives any one step, so it hangs off Background and not t.Context(),
	// which ends before cleanups run and would kill it before it can close gracefully.
	allocCtx, allocCancel := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancel := chromedp.NewContext(allocCtx)
	t.Cleanup(func() {
		cctx, ccancel := context.WithTimeout(ctx, closeTimeout)
		defer ccancel()
		err := chromedp.Cancel(cctx)
		cancel()
		allocCancel() // waits until the process has exited and its profile is removed
		if err != nil && !errors.Is(err, context.Canceled) {
			t.Errorf("browsertest: close chromium: %v", err)
		}
	})
	// The first run starts the browser. It must not carry a timeout (that would bind the
	// browser's life to it), so the start is bounded by a watchdog instead.
	started := make(chan error, 1)
	go func() { started <- chromedp.Do(ctx) }()
	select {
	case err = <-started:
	case <-time.After(DefaultStepTimeout):
		cancel()
		err = fmt.Errorf("no answer after %v", DefaultStepTimeout)
	}
	if err != nil {
		t.Fatalf("browsertest: start %s: %v", path, err)
	}
	return &Browser{StepTimeout: DefaultStepTimeout, tb: t, ctx: ctx}
}

// findChromium returns the path of the first Chromium on PATH.
func findChromium() (string, error) {
	for _, name := range execNames {
		if p, err := exec.LookPath(name); err == nil {
			return p, nil
		}
	}
	return "", fmt.Errorf("no chromium on PATH (looked for %s)", strings.Join(execNames, ", "))
}

// Ctx returns the tab's chromedp context, for queries Step and Text do not cover:
// chromedp.Run(b.Ctx(), chromedp.Evaluate[int]("…")). It has no deadline; derive one with
// context.WithTimeout for anything that might wait.
func (b *Browser) Ctx() context.Context { return b.ctx }

// Step runs one named step of a journey: the actions in order, within StepTimeout. When one
// fails, it saves a full-page PNG screenshot and the page's HTML to Artifacts(t) as
// <NN-name>.png and <NN-name>.html and fails the test with t.Fatalf, naming the step, the
// error and the screenshot's path.
func (b *Browser) Step(name string, actions ...chromedp.Action[chromedp.Void]) {
	b.tb.Helper()
	n := b.next()
	ctx, cancel := context.WithTimeout(b.ctx, b.StepTimeout)
	defer cancel()
	if err := chromedp.Do(ctx, actions...); err != nil {
		b.fail(n, name, err)
	}
}

// Text returns the visible text of the first element matching the CSS selector sel, waiting
// up to StepTimeout for it to be visible. On failure it leaves the same artifacts as Step.
func (b *Browser) Text(sel string) string {
	b.tb.Helper()
	n := b.next()
	ctx, cancel := context.WithTimeout(b.ctx, b.StepTimeout)
	defer cancel()
	s, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS(sel), chromedp.NodeVisible))
	if err != nil {
		b.fail(n, "text of "+sel, err)
	}
	return s
}

// Screenshot saves a full-page PNG of the tab now as Artifacts(t)/<NN-name>.png and returns
// its path; it fails the test if it cannot.
func (b *Browser) Screenshot(name string) string {
	b.tb.Helper()
	path, err := b.capture(b.next(), name, false)
	if err != nil {
		b.tb.Fatalf("browsertest: screenshot %q: %v", name, err)
	}
	return path
}

// next returns the number of the next step or screenshot.
func (b *Browser) next() int {
	b.steps++
	return b.steps
}

// fail records what the page looked like when step n failed and ends the test.
func (b *Browser) fail(n int, name string, stepErr error) {
	b.tb.Helper()
	if errors.Is(stepErr, context.DeadlineExceeded) {
		stepErr = fmt.Errorf("timed out after %v: %w", b.StepTimeout, stepErr)
	}
	where := ""
	if loc, err := b.location(); err == nil {
		where = " at " + loc
	}
	path, err := b.capture(n, name, true)
	if err != nil {
		b.tb.Fatalf("browsertest: step %d %q failed%s: %v (and no screenshot: %v)", n, name, where, stepErr, err)
	}
	b.tb.Fatalf("browsertest: step %d %q failed%s: %v\n\tscreenshot: %s\n\thtml: %s",
		n, name, where, stepErr, path, strings.TrimSuffix(path, ".png")+".html")
}

// location returns the tab's URL.
func (b *Browser) location() (string, error) {
	ctx, cancel := context.WithTimeout(b.ctx, artifactTimeout)
	defer cancel()
	return chromedp.Run(ctx, chromedp.Location())
}

// capture writes <NN-name>.png (and with html, <NN-name>.html) to Artifacts and returns the
// PNG's path. It has a timeout of its own, because it often runs after a step ran out of time.
func (b *Browser) capture(n int, name string, html bool) (string, error) {
	ctx, cancel := context.WithTimeout(b.ctx, artifactTimeout)
	defer cancel()
	base := filepath.Join(Artifacts(b.tb), fmt.Sprintf("%02d-%s", n, fileName(name)))
	var errs []error
	if html {
		// The HTML is taken first: it is what shows an error message the screenshot may cut.
		doc, err := chromedp.Run(ctx, chromedp.Evaluate[string]("document.documentElement.outerHTML"))
		if err == nil {
			err = os.WriteFile(base+".html", []byte(doc), 0o644)
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("save html: %w", err))
		}
	}
	// FullScreenshot at quality 100 is a PNG of the whole page, beyond the viewport.
	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err == nil {
		err = os.WriteFile(base+".png", png, 0o644)
	}
	if err != nil {
		return "", errors.Join(append(errs, fmt.Errorf("save screenshot: %w", err))...)
	}
	if len(errs) > 0 {
		b.tb.Logf("browsertest: %v", errors.Join(errs...))
	}
	return base + ".png", nil
}

// Artifacts returns the folder for t's screenshots and other files to keep after the test:
// $PM_TEST_ARTIFACTS/<test name>, or <os.TempDir()>/pocketmolt-artifacts/<test name> when
// that is unset. It makes the folder if needed, and fails the test if it cannot. Files in it
// are not removed when the test ends; a file of the same name from an earlier run is replaced.
// Subtests get subfolders.
func Artifacts(t testing.TB) string {
	t.Helper()
	root := os.Getenv("PM_TEST_ARTIFACTS")
	if root == "" {
		root = filepath.Join(os.TempDir(), "pocketmolt-artifacts")
	}
	dir := filepath.Join(root, testPath(t.Name()))
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatalf("browsertest: make artifacts folder: %v", err)
	}
	return dir
}

// testPath turns a test name ("TestJourney/sign up") into a relative path with one folder
// per subtest level, each made safe by fileName.
func testPath(name string) string {
	parts := strings.Split(name, "/")
	for i, p := range parts {
		parts[i] = fileName(p)
	}
	return filepath.Join(parts...)
}

// fileName makes s safe as one file name on any system: letters, digits, '.', '_' and '-'
// are kept, runs of anything else become one '-', and names that mean something to a file
// system ("", ".", "..") become "_".
func fileName(s string) string {
	var sb strings.Builder
	dash := false
	for _, r := range s {
		ok := r == '.' || r == '_' || r == '-' || (r >= 'a' && r <= 'z') || (r >= 'A' && r <= 'Z') || (r >= '0' && r <= '9')
		switch {
		case ok:
			sb.WriteRune(r)
			dash = false
		case !dash:
			sb.WriteByte('-')
			dash = true
		}
	}
	out := strings.Trim(sb.String(), "-")
	if out == "" || strings.Trim(out, ".") == "" {
		return "_"
	}
	const maxLen = 100
	if len(out) > maxLen {
		out = out[:maxLen]
	}
	return out
}
