package web

import (
	"net/http"
	"net/http/httptest"
	"net/url"
	"testing"
)

// BenchmarkPages serves pages through the whole handler (headers, CSRF, session lookup on
// SQLite, the fake billing's overview, template rendering) without the network.
func BenchmarkPages(b *testing.B) {
	s := newSite(b, siteOptions{})
	br, _ := s.signup("ada@example.com")
	br.submit(br.get("/app/setup"), "/app/setup", setupFields())
	u, _ := url.Parse(s.url)
	cookies := br.jar.Cookies(u)
	for _, pg := range []struct{ name, path string }{{"landing", "/"}, {"dashboard", "/app"}, {"setup", "/app/setup"}, {"status.json", "/app/status.json"}} {
		path := pg.path
		b.Run(pg.name, func(b *testing.B) {
			for b.Loop() {
				req := httptest.NewRequest(http.MethodGet, s.url+path, nil)
				for _, c := range cookies {
					req.AddCookie(c)
				}
				rec := httptest.NewRecorder()
				s.srv.ServeHTTP(rec, req)
				if rec.Code != http.StatusOK {
					b.Fatalf("%s: %d", path, rec.Code)
				}
			}
		})
	}
}
