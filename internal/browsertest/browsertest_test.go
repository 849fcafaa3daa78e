package browsertest

import (
	"fmt"
	"html"
	"image/png"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// site serves a form that posts a name and a page that greets it, and records each name it
// was posted, so that a test can tell a real submission from a page that only looks right.
type site struct {
	*httptest.Server
	mu     sync.Mutex
	posted []string
}

func newSite(t *testing.T) *site {
	s := &site{}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, `<!doctype html><html><head><title>Sign up</title></head><body>
<h1 id="heading">Tell us your name</h1>
<form method="post" action="/greet">
  <label for="name">Name</label> <input id="name" name="name" autocomplete="off">
  <button type="submit">Continue</button>
</form></body></html>`)
	})
	mux.HandleFunc("POST /greet", func(w http.ResponseWriter, r *http.Request) {
		name := r.PostFormValue("name")
		s.mu.Lock()
		s.posted = append(s.posted, name)
		s.mu.Unlock()
		fmt.Fprintf(w, `<!doctype html><html><head><title>Welcome</title></head><body>
<p id="result">Hello, %s</p></body></html>`, html.EscapeString(name))
	})
	mux.HandleFunc("GET /tall", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, `<!doctype html><html><body style="margin:0">
<div style="height:3000px;background:linear-gradient(#fff,#36c)">top</div><p id="end">end</p></body></html>`)
	})
	s.Server = httptest.NewServer(mux)
	t.Cleanup(s.Close)
	return s
}

func (s *site) names() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.posted...)
}

// artifactsIn points Artifacts at a fresh folder, so that this package's deliberate failures
// do not land among CI's real artifacts.
func artifactsIn(t *testing.T) string {
	dir := t.TempDir()
	t.Setenv("PM_TEST_ARTIFACTS", dir)
	return dir
}

func TestFormJourney(t *testing.T) {
	artifactsIn(t)
	s := newSite(t)
	b := New(t)

	b.Step("open the form", chromedp.Navigate(s.URL))
	if got := b.Text("#heading"); got != "Tell us your name" {
		t.Fatalf("heading = %q", got)
	}
	b.Step("fill and submit",
		chromedp.SendKeys(chromedp.ID("name"), "Ada Lovelace"),
		chromedp.Click(chromedp.CSS(`button[type="submit"]`)),
		chromedp.WaitVisible(chromedp.ID("result")),
	)
	if got := b.Text("#result"); got != "Hello, Ada Lovelace" {
		t.Fatalf("result page says %q, want %q", got, "Hello, Ada Lovelace")
	}
	if got := s.names(); len(got) != 1 || got[0] != "Ada Lovelace" {
		t.Fatalf("the server was posted %q, want one post of %q", got, "Ada Lovelace")
	}
	// Ctx is for what Step and Text do not cover.
	title, err := chromedp.Run(b.Ctx(), chromedp.Title())
	if err != nil || title != "Welcome" {
		t.Fatalf("title = %q, %v; want Welcome", title, err)
	}
}

func TestScreenshotIsAFullPagePNG(t *testing.T) {
	root := artifactsIn(t)
	s := newSite(t)
	b := New(t)
	b.Step("open a tall page", chromedp.Navigate(s.URL+"/tall"))
	path := b.Screenshot("tall page")

	if want := filepath.Join(root, t.Name(), "02-tall-page.png"); path != want {
		t.Fatalf("Screenshot saved %s, want %s", path, want)
	}
	w, h := pngSize(t, path)
	// 3000 px of page is taller than the 900 px window: only a full-page capture has it all.
	if h < 3000 || w < 1000 {
		t.Fatalf("screenshot is %dx%d, want the whole 3000 px page at the window's width", w, h)
	}
}

// recorder is a testing.TB whose Fatalf and Skipf record the message and end the calling
// goroutine, as the real ones do, without failing or skipping the real test. Everything else
// goes to the real test.
type recorder struct {
	testing.TB
	mu     sync.Mutex
	fatal  string
	skip   string
	failed bool
}

func (r *recorder) Fatalf(format string, args ...any) {
	r.mu.Lock()
	r.fatal, r.failed = fmt.Sprintf(format, args...), true
	r.mu.Unlock()
	runtime.Goexit()
}

func (r *recorder) Skipf(format string, args ...any) {
	r.mu.Lock()
	r.skip = fmt.Sprintf(format, args...)
	r.mu.Unlock()
	runtime.Goexit()
}

// run calls f on its own goroutine, as the testing package runs a test, so that the
// recorder's Goexit ends only f.
func (r *recorder) run(f func()) {
	done := make(chan struct{})
	go func() {
		defer close(done)
		f()
	}()
	<-done
}

func TestFailingStepLeavesScreenshotAndHTML(t *testing.T) {
	root := artifactsIn(t)
	s := newSite(t)
	b := New(t)
	b.Step("open the form", chromedp.Navigate(s.URL))

	rec := &recorder{TB: t}
	fb := *b // the same tab, failing into the recorder instead of this test
	fb.tb = rec
	fb.StepTimeout = 2 * time.Second
	start := time.Now()
	rec.run(func() {
		fb.Step("click a button that is not there", chromedp.Click(chromedp.ID("no-such-button")))
		t.Error("Step returned after its action failed; want it to end the test")
	})
	if !rec.failed {
		t.Fatal("the failing step did not fail the test")
	}
	if took := time.Since(start); took > fb.StepTimeout+2*artifactTimeout {
		t.Errorf("the failing step took %v; its timeout is %v", took, fb.StepTimeout)
	}
	t.Logf("failure message: %s", rec.fatal)

	png := filepath.Join(root, t.Name(), "02-click-a-button-that-is-not-there.png")
	for _, want := range []string{`"click a button that is not there"`, "timed out after 2s", png, s.URL} {
		if !strings.Contains(rec.fatal, want) {
			t.Errorf("failure message lacks %q", want)
		}
	}
	if w, h := pngSize(t, png); w < 1000 || h < 500 {
		t.Errorf("screenshot is %dx%d, want the 1280x900 window", w, h)
	}
	doc, err := os.ReadFile(strings.TrimSuffix(png, ".png") + ".html")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(doc), "Tell us your name") {
		t.Errorf("saved HTML is not the page the step failed on:\n%s", doc)
	}

	// The tab still works after a failed step, so a test can go on to clean up.
	if got := b.Text("#heading"); got != "Tell us your name" {
		t.Fatalf("after the failure, heading = %q", got)
	}
}

func TestNewWithoutChromium(t *testing.T) {
	t.Setenv("PATH", t.TempDir()) // an empty folder: no chromium anywhere
	for _, c := range []struct {
		ci       string
		wantSkip bool
	}{{"", true}, {"true", false}} {
		t.Run("CI="+c.ci, func(t *testing.T) {
			t.Setenv("CI", c.ci)
			rec := &recorder{TB: t}
			rec.run(func() {
				newBrowser(rec)
				t.Error("newBrowser returned without a browser")
			})
			if got := rec.skip != ""; got != c.wantSkip {
				t.Fatalf("skipped = %v (%q), failed = %v (%q); want skipped = %v", got, rec.skip, rec.failed, rec.fatal, c.wantSkip)
			}
			if !c.wantSkip && (!rec.failed || !strings.Contains(rec.fatal, "CI is set")) {
				t.Fatalf("with CI set, Fatalf = %q; want a failure that says CI is set", rec.fatal)
			}
		})
	}
}

func TestArtifacts(t *testing.T) {
	t.Run("from PM_TEST_ARTIFACTS", func(t *testing.T) {
		root := artifactsIn(t)
		dir := Artifacts(t)
		if want := filepath.Join(root, "TestArtifacts", "from_PM_TEST_ARTIFACTS"); dir != want {
			t.Fatalf("Artifacts = %s, want %s", dir, want)
		}
		if fi, err := os.Stat(dir); err != nil || !fi.IsDir() {
			t.Fatalf("Artifacts did not make its folder: %v", err)
		}
	})
	t.Run("default", func(t *testing.T) {
		t.Setenv("PM_TEST_ARTIFACTS", "")
		tmp := t.TempDir()
		t.Setenv("TMPDIR", tmp) // os.TempDir reads it, so the default lands in this test's folder
		dir := Artifacts(t)
		if want := filepath.Join(tmp, "pocketmolt-artifacts", "TestArtifacts", "default"); dir != want {
			t.Fatalf("Artifacts = %s, want %s", dir, want)
		}
	})
	for _, name := range []string{"..", "../../etc", "a/../../b", "sp ace:and*stars?"} {
		t.Run(name, func(t *testing.T) {
			root := artifactsIn(t)
			dir := Artifacts(t)
			rel, err := filepath.Rel(root, dir)
			if err != nil || strings.HasPrefix(rel, "..") || !strings.HasPrefix(rel, "TestArtifacts"+string(filepath.Separator)) {
				t.Fatalf("Artifacts for %q = %s, outside %s", t.Name(), dir, root)
			}
		})
	}
}

func TestFileName(t *testing.T) {
	for in, want := range map[string]string{
		"sign up":                "sign-up",
		"open the form":          "open-the-form",
		"text of #status .badge": "text-of-status-.badge",
		"..":                     "_",
		".":                      "_",
		"":                       "_",
		"///":                    "_",
		"a/b\\c":                 "a-b-c",
		"ünï":                    "n",
		"Step_01-ok.v2":          "Step_01-ok.v2",
		strings.Repeat("x", 300): strings.Repeat("x", 100),
	} {
		if got := fileName(in); got != want {
			t.Errorf("fileName(%q) = %q, want %q", in, got, want)
		}
	}
}

// pngSize decodes the PNG header at path.
func pngSize(t *testing.T, path string) (int, int) {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatalf("screenshot: %v", err)
	}
	defer f.Close()
	cfg, err := png.DecodeConfig(f)
	if err != nil {
		t.Fatalf("%s is not a PNG: %v", path, err)
	}
	return cfg.Width, cfg.Height
}
