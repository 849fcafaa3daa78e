package apiclient

import (
	"context"
	"net/http"
	"net/url"

	"github.com/pocketmolt/pocketmolt/internal/wire"
)

// ListUsers returns every customer account, in the server's order.
func (c *Client) ListUsers(ctx context.Context) ([]wire.User, error) {
	return list[wire.User](ctx, c, "/v1/users")
}

// GetUser returns the customer whose email or id is ref.
func (c *Client) GetUser(ctx context.Context, ref string) (*wire.User, error) {
	return call[wire.User](ctx, c, http.MethodGet, "/v1/users/"+seg(ref), nil)
}

// DisableUser stops the customer from logging in, ends every session of theirs, and returns
// the account.
func (c *Client) DisableUser(ctx context.Context, ref string) (*wire.User, error) {
	return call[wire.User](ctx, c, http.MethodPost, "/v1/users/"+seg(ref)+"/disable", nil)
}

// EnableUser lets a disabled customer log in again and returns the account.
func (c *Client) EnableUser(ctx context.Context, ref string) (*wire.User, error) {
	return call[wire.User](ctx, c, http.MethodPost, "/v1/users/"+seg(ref)+"/enable", nil)
}

// UserResetLink makes a one-time password reset link for the customer. The link is a
// credential: whoever holds it can set the password until it expires.
func (c *Client) UserResetLink(ctx context.Context, ref string) (*wire.ResetLink, error) {
	return call[wire.ResetLink](ctx, c, http.MethodPost, "/v1/users/"+seg(ref)+"/reset-link", nil)
}

// GrantSubscription gives the customer a subscription without Stripe and returns it.
func (c *Client) GrantSubscription(ctx context.Context, ref string, req wire.GrantRequest) (*wire.Subscription, error) {
	return call[wire.Subscription](ctx, c, http.MethodPost, "/v1/users/"+seg(ref)+"/grant", req)
}

// ListSubscriptions returns every subscription, or only the customer's whose email or id is
// userRef when it is not empty.
func (c *Client) ListSubscriptions(ctx context.Context, userRef string) ([]wire.Subscription, error) {
	path := "/v1/subscriptions"
	if userRef != "" {
		path += "?" + url.Values{"user": {userRef}}.Encode()
	}
	return list[wire.Subscription](ctx, c, path)
}

// GetSubscription returns the subscription whose id is id.
func (c *Client) GetSubscription(ctx context.Context, id string) (*wire.Subscription, error) {
	return call[wire.Subscription](ctx, c, http.MethodGet, "/v1/subscriptions/"+seg(id), nil)
}

// GetCredits returns the customer's credit balance and ledger.
func (c *Client) GetCredits(ctx context.Context, ref string) (*wire.Credits, error) {
	return call[wire.Credits](ctx, c, http.MethodGet, "/v1/users/"+seg(ref)+"/credits", nil)
}

// AdjustCredits adds req.Amount (negative to take away) to the customer's credits with a
// reason, and returns the balance and ledger after it.
func (c *Client) AdjustCredits(ctx context.Context, ref string, req wire.AdjustCreditsRequest) (*wire.Credits, error) {
	return call[wire.Credits](ctx, c, http.MethodPost, "/v1/users/"+seg(ref)+"/credits", req)
}
