package web

import (
	"context"
	"errors"
	"net/http"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"
)

// fakeUsage answers each customer's usage from a map, or fails.
type fakeUsage struct {
	mu   sync.Mutex
	by   map[string]UsageSummary
	err  error
	asks []string
}

func (f *fakeUsage) CustomerUsage(_ context.Context, userID string) (UsageSummary, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.asks = append(f.asks, userID)
	return f.by[userID], f.err
}

func (f *fakeUsage) set(userID string, u UsageSummary) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.by[userID] = u
}

func (f *fakeUsage) asked() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.asks...)
}

var _ Usage = (*fakeUsage)(nil)

// detail returns the text of the details row with the given id ("" when there is none), its
// tags stripped and its spaces folded.
func (p *page) detail(id string) string {
	m := regexp.MustCompile(`(?s)<div class="usage" id="` + regexp.QuoteMeta(id) + `">(.*?)</div>`).FindStringSubmatch(p.body)
	if m == nil {
		return ""
	}
	text := regexp.MustCompile(`<[^>]*>`).ReplaceAllString(m[1], " ")
	return strings.Join(strings.Fields(text), " ")
}

func TestDashboardUsage(t *testing.T) {
	fu := &fakeUsage{by: map[string]UsageSummary{}}
	s := newSite(t, siteOptions{web: func(c *Config) { c.Usage = fu }})
	b, userID := s.signup("ada@example.com")
	b.fill("/app/setup", "/app/setup", setupFields()).want(t, http.StatusSeeOther, "/app?notice=saved")

	// Before a subscription there is nothing to count: the rows are not there, and the
	// service is not asked.
	dash := b.get("/app")
	dash.want(t, http.StatusOK, "")
	dash.lacks(t, `id="usage-today"`, `id="usage-period"`)
	if got := fu.asked(); len(got) != 0 {
		t.Errorf("usage asked before a subscription: %v", got)
	}

	b.submit(dash, "/app/subscribe", nil).want(t, http.StatusSeeOther, "/app")
	tests := []struct {
		name       string
		sum        UsageSummary
		today, per string
	}{
		{"nothing yet", UsageSummary{PeriodStart: time.Date(2026, 11, 19, 8, 0, 0, 0, time.UTC)},
			"Used today 0 tokens · $0.00", "This period since 19 November 0 tokens · $0.00"},
		{"some", UsageSummary{TodayCalls: 3, TodayTokens: 1, TodayCredits: "0.01", PeriodCalls: 40, PeriodTokens: 1234567, PeriodCredits: "4.20",
			PeriodStart: time.Date(2026, 11, 19, 23, 30, 0, 0, time.FixedZone("CET", 3600))},
			"Used today 1 token · $0.01", "This period since 19 November 1,234,567 tokens · $4.20"},
		{"no period start", UsageSummary{TodayTokens: 999, TodayCredits: "0.0042", PeriodTokens: 1000, PeriodCredits: "0.0050"},
			"Used today 999 tokens · $0.0042", "This period 1,000 tokens · $0.0050"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fu.set(userID, tt.sum)
			dash := b.get("/app")
			dash.want(t, http.StatusOK, "")
			if got := dash.detail("usage-today"); got != tt.today {
				t.Errorf("today reads %q, want %q", got, tt.today)
			}
			if got := dash.detail("usage-period"); got != tt.per {
				t.Errorf("this period reads %q, want %q", got, tt.per)
			}
			// The rows sit in the details list with the credits left, which stays.
			dash.has(t, `id="credits-left"`)
			if i, j := strings.Index(dash.body, `id="credits-left"`), strings.Index(dash.body, `id="usage-today"`); i < 0 || j < i {
				t.Errorf("the usage is not after the credits left")
			}
		})
	}
	if got := fu.asked(); len(got) == 0 || got[len(got)-1] != userID {
		t.Errorf("usage asked for %v, want %s", got, userID)
	}

	// Someone else's usage is never shown: each customer's page asks for their own.
	other, otherID := s.signup("bob@example.com")
	other.fill("/app/setup", "/app/setup", setupFields())
	other.submit(other.get("/app"), "/app/subscribe", nil)
	fu.set(otherID, UsageSummary{TodayTokens: 7, TodayCredits: "0.07", PeriodTokens: 7, PeriodCredits: "0.07"})
	if got := other.get("/app").detail("usage-today"); got != "Used today 7 tokens · $0.07" {
		t.Errorf("bob's today reads %q", got)
	}
}

func TestDashboardUsageBYOK(t *testing.T) {
	fu := &fakeUsage{by: map[string]UsageSummary{}}
	s := newSite(t, siteOptions{web: func(c *Config) { c.Usage = fu }})
	b, userID := s.signup("ada@example.com")
	f := setupFields()
	f.Set("key_mode", "byok")
	f.Set("api_key", "sk-ant-api03-secretsecretsecret-WXYZ")
	b.fill("/app/setup", "/app/setup", f).want(t, http.StatusSeeOther, "/app?notice=saved")
	b.submit(b.get("/app"), "/app/subscribe", nil).want(t, http.StatusSeeOther, "/app")
	fu.set(userID, UsageSummary{TodayTokens: 2500, TodayCredits: "0.00", PeriodTokens: 12000, PeriodCredits: "0.00"})
	dash := b.get("/app")
	// Their own key pays the provider: tokens only, no credits.
	if got := dash.detail("usage-today"); got != "Used today 2,500 tokens" {
		t.Errorf("today reads %q", got)
	}
	if got := dash.detail("usage-period"); got != "This period 12,000 tokens" {
		t.Errorf("this period reads %q", got)
	}
}

func TestDashboardUsageLeftOut(t *testing.T) {
	t.Run("no usage service", func(t *testing.T) {
		s := newSite(t, siteOptions{})
		b, _ := s.signup("ada@example.com")
		b.fill("/app/setup", "/app/setup", setupFields())
		b.submit(b.get("/app"), "/app/subscribe", nil)
		dash := b.get("/app")
		dash.want(t, http.StatusOK, "")
		dash.has(t, `id="credits-left"`)
		dash.lacks(t, "usage-today", "Used today")
	})
	t.Run("the service fails", func(t *testing.T) {
		fu := &fakeUsage{by: map[string]UsageSummary{}, err: errors.New("query usage: connection refused to db.internal:5432")}
		s := newSite(t, siteOptions{web: func(c *Config) { c.Usage = fu }})
		b, userID := s.signup("ada@example.com")
		b.fill("/app/setup", "/app/setup", setupFields())
		b.submit(b.get("/app"), "/app/subscribe", nil)
		dash := b.get("/app")
		// The dashboard is whole without the usage, and says nothing of the failure.
		dash.want(t, http.StatusOK, "")
		dash.has(t, `id="credits-left"`, `id="stage"`, `name="restart"`)
		dash.lacks(t, "usage-today", "db.internal", "something went wrong")
		if logs := s.logs.String(); !strings.Contains(logs, "dashboard usage left out") || !strings.Contains(logs, userID) {
			t.Errorf("the failure is not logged:\n%s", logs)
		}
	})
}

func TestUsageText(t *testing.T) {
	tests := []struct {
		tokens  int64
		credits string
		show    bool
		want    string
	}{
		{0, "", true, "0 tokens · $0.00"},
		{1, "0.01", true, "1 token · $0.01"},
		{999, "0.42", true, "999 tokens · $0.42"},
		{1000, "1", true, "1,000 tokens · $1"},
		{123456789, "1234.50", true, "123,456,789 tokens · $1234.50"},
		{1234, "0.42", false, "1,234 tokens"},
		{-1500, "0", false, "-1,500 tokens"},
	}
	for _, tt := range tests {
		if got := usageText(tt.tokens, tt.credits, tt.show); got != tt.want {
			t.Errorf("usageText(%d, %q, %v) = %q, want %q", tt.tokens, tt.credits, tt.show, got, tt.want)
		}
	}
}
