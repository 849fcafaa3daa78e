package web

import (
	"context"
	"strconv"
	"strings"
	"time"

	"github.com/pocketmolt/pocketmolt/internal/billing"
)

// Usage is what the dashboard needs of model usage; pmd's usage service provides it. It must
// be safe for concurrent use. An error leaves the usage off the dashboard (and is logged):
// the rest of the page does not depend on it.
type Usage interface {
	CustomerUsage(ctx context.Context, userID string) (UsageSummary, error)
}

// UsageSummary is a customer's model usage today (UTC) and in their current billing period.
// Credits are what was debited from their credits, as a decimal number of credits ("0.42").
type UsageSummary struct {
	TodayCalls, PeriodCalls     int64
	TodayTokens, PeriodTokens   int64
	TodayCredits, PeriodCredits string
	// PeriodStart is when the current period began; zero when the customer has none.
	PeriodStart time.Time
}

// usageView is the usage as the dashboard shows it.
type usageView struct {
	Today, Period string
	Since         string // "19 November", or ""
}

// usageView fetches and words the customer's usage; nil when there is nothing to show (no
// usage service, no subscription yet, or the service failed).
func (s *Server) usageView(ctx context.Context, userID string, ov billing.Overview) *usageView {
	if s.usage == nil || ov.Subscription == nil || ov.Assistant == nil {
		return nil
	}
	u, err := s.usage.CustomerUsage(ctx, userID)
	if err != nil {
		s.log.WarnContext(ctx, "dashboard usage left out", "user_id", userID, "err", err)
		return nil
	}
	// With their own key the customer pays the provider; no credits are debited.
	credits := ov.Assistant.KeyMode != billing.KeyBYOK
	v := &usageView{Today: usageText(u.TodayTokens, u.TodayCredits, credits), Period: usageText(u.PeriodTokens, u.PeriodCredits, credits)}
	if !u.PeriodStart.IsZero() {
		v.Since = u.PeriodStart.UTC().Format("2 January")
	}
	return v
}

// usageText is "12,345 tokens · $0.42", or only the tokens for a customer on their own key.
func usageText(tokens int64, credits string, showCredits bool) string {
	t := grouped(tokens) + " tokens"
	if tokens == 1 {
		t = "1 token"
	}
	if !showCredits {
		return t
	}
	c := strings.TrimSpace(credits)
	if c == "" {
		c = "0.00"
	}
	return t + " · $" + c
}

// grouped writes n with a comma between thousands: 1234567 → "1,234,567".
func grouped(n int64) string {
	s := strconv.FormatInt(n, 10)
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
	var b strings.Builder
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	if neg {
		return "-" + b.String()
	}
	return b.String()
}
