package apiclient

import (
	"context"
	"net/http"
	"net/url"
	"strconv"

	"github.com/pocketmolt/pocketmolt/internal/wire"
)

// UsageTop returns the largest spenders on model calls over period ("7d", "12h"; "" is pmd's
// default, 7d): one row per owner, bot and model, at most limit rows (0 is pmd's default, 20).
func (c *Client) UsageTop(ctx context.Context, period string, limit int) (*wire.UsageReport, error) {
	q := url.Values{}
	if period != "" {
		q.Set("period", period)
	}
	if limit != 0 {
		q.Set("limit", strconv.Itoa(limit))
	}
	return call[wire.UsageReport](ctx, c, http.MethodGet, withQuery("/v1/usage/top", q), nil)
}

// BotUsage returns the model usage of the bot whose name or id is ref over period ("30d";
// "" is pmd's default, 30d), one row per day and model.
func (c *Client) BotUsage(ctx context.Context, ref, period string) (*wire.UsageReport, error) {
	q := url.Values{}
	if period != "" {
		q.Set("period", period)
	}
	return call[wire.UsageReport](ctx, c, http.MethodGet, withQuery("/v1/usage/bots/"+seg(ref), q), nil)
}

func withQuery(path string, q url.Values) string {
	if len(q) == 0 {
		return path
	}
	return path + "?" + q.Encode()
}
