package adminapi

import (
	"context"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/pocketmolt/pocketmolt/internal/httpapi"
	"github.com/pocketmolt/pocketmolt/internal/wire"
)

// UsageReports is what the admin API serves about model usage: pmd's usage service provides
// it. Reports cover [since, until). Errors that are *wire.Error reach the caller as they are;
// others are internal.
type UsageReports interface {
	// Top returns the limit largest rows of the period by cost, one per owner, bot and model.
	Top(ctx context.Context, since, until time.Time, limit int) (wire.UsageReport, error)
	// Bot returns one bot's rows of the period, one per day and model.
	Bot(ctx context.Context, botID string, since, until time.Time) (wire.UsageReport, error)
}

// Usage report bounds: the period a report may cover and the rows `top` may return.
const (
	MinUsagePeriod        = time.Hour
	MaxUsagePeriod        = 366 * 24 * time.Hour
	DefaultTopPeriod      = 7 * 24 * time.Hour
	DefaultBotUsagePeriod = 30 * 24 * time.Hour
	DefaultTopLimit       = 20
	MaxTopLimit           = 1000
)

// periodHelp says what a period may be, for the messages of bad ones.
const periodHelp = "give a number of days or hours such as 7d or 12h, from 1h to 366d"

// ParsePeriod reads a report's period: a positive whole number of days ("7d") or hours
// ("12h"), from MinUsagePeriod to MaxUsagePeriod. Errors say what to give instead.
func ParsePeriod(s string) (time.Duration, error) {
	if len(s) < 2 || len(s) > 8 {
		return 0, fmt.Errorf("period %q: %s", s, periodHelp)
	}
	var unit time.Duration
	switch s[len(s)-1] {
	case 'd':
		unit = 24 * time.Hour
	case 'h':
		unit = time.Hour
	default:
		return 0, fmt.Errorf("period %q: %s", s, periodHelp)
	}
	digits := s[:len(s)-1]
	for _, c := range digits {
		if c < '0' || c > '9' {
			return 0, fmt.Errorf("period %q: %s", s, periodHelp)
		}
	}
	n, err := strconv.ParseInt(digits, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("period %q: %s", s, periodHelp)
	}
	d := time.Duration(n) * unit
	if d < MinUsagePeriod || d > MaxUsagePeriod {
		return 0, fmt.Errorf("period %q is out of range: %s", s, periodHelp)
	}
	return d, nil
}

func (a *API) usageRoutes(route func(string, httpapi.HandlerFunc)) {
	route("GET /v1/usage/top", a.usageTop)
	route("GET /v1/usage/bots/{ref}", a.botUsage)
}

// usage returns the usage service, or why there is none: the routes exist either way, so a
// client learns that pmd does not serve reports instead of a bare 404.
func (a *API) usage() (UsageReports, error) {
	if a.Usage == nil {
		return nil, wire.Errorf(wire.CodeUnavailable, "usage reports are not available: this pmd does not meter model calls")
	}
	return a.Usage, nil
}

// period reads the "period" query parameter, def when it is absent, and returns the report's
// bounds ending now.
func period(r *http.Request, def time.Duration) (since, until time.Time, label string, err error) {
	d := def
	if q := r.URL.Query(); q.Has("period") {
		if d, err = ParsePeriod(q.Get("period")); err != nil {
			return since, until, "", wire.Errorf(wire.CodeInvalidArgument, "%v", err)
		}
	}
	until = time.Now().UTC()
	return until.Add(-d), until, periodLabel(d), nil
}

// periodLabel writes d as ParsePeriod reads it.
func periodLabel(d time.Duration) string {
	if d%(24*time.Hour) == 0 {
		return strconv.FormatInt(int64(d/(24*time.Hour)), 10) + "d"
	}
	return strconv.FormatInt(int64(d/time.Hour), 10) + "h"
}

func (a *API) usageTop(w http.ResponseWriter, r *http.Request) error {
	u, err := a.usage()
	if err != nil {
		return err
	}
	since, until, label, err := period(r, DefaultTopPeriod)
	if err != nil {
		return err
	}
	limit := DefaultTopLimit
	if r.URL.Query().Has("limit") {
		s := r.URL.Query().Get("limit")
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > MaxTopLimit {
			return wire.Errorf(wire.CodeInvalidArgument, "limit %q: give a number of rows from 1 to %d", s, MaxTopLimit)
		}
		limit = n
	}
	rep, err := u.Top(r.Context(), since, until, limit)
	if err != nil {
		return err
	}
	// Customers' spending read by an operator is audited, as their credits are.
	if err := a.audit(r, "usage.top", "usage", fmt.Sprintf("period %s, limit %d, %d rows", label, limit, len(rep.Rows))); err != nil {
		return err
	}
	writeReport(w, rep)
	return nil
}

func (a *API) botUsage(w http.ResponseWriter, r *http.Request) error {
	u, err := a.usage()
	if err != nil {
		return err
	}
	since, until, label, err := period(r, DefaultBotUsagePeriod)
	if err != nil {
		return err
	}
	b, err := a.Bots.Get(r.Context(), r.PathValue("ref"))
	if err != nil {
		return err
	}
	rep, err := u.Bot(r.Context(), b.ID, since, until)
	if err != nil {
		return err
	}
	if err := a.audit(r, "usage.bot", b.ID, fmt.Sprintf("%s, period %s", b.Name, label)); err != nil {
		return err
	}
	writeReport(w, rep)
	return nil
}

// writeReport answers with a report; its rows are [] rather than null when there are none.
func writeReport(w http.ResponseWriter, rep wire.UsageReport) {
	if rep.Rows == nil {
		rep.Rows = []wire.UsageRow{}
	}
	wire.WriteJSON(w, http.StatusOK, rep)
}
