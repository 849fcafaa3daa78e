package apiclient

import (
	"context"
	"net/url"
	"strconv"

	"github.com/pocketmolt/pocketmolt/internal/wire"
)

// ListAudit returns up to limit audit entries, newest first; limit <= 0 means the server's
// default.
func (c *Client) ListAudit(ctx context.Context, limit int) ([]wire.AuditEntry, error) {
	path := "/v1/audit"
	if limit > 0 {
		path += "?" + url.Values{"limit": {strconv.Itoa(limit)}}.Encode()
	}
	return list[wire.AuditEntry](ctx, c, path)
}
