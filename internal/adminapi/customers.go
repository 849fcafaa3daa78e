package adminapi

import (
	"context"
	"errors"
	"net/http"
	"strconv"
	"time"

	"github.com/pocketmolt/pocketmolt/internal/accounts"
	"github.com/pocketmolt/pocketmolt/internal/billing"
	"github.com/pocketmolt/pocketmolt/internal/credits"
	"github.com/pocketmolt/pocketmolt/internal/httpapi"
	"github.com/pocketmolt/pocketmolt/internal/store"
	"github.com/pocketmolt/pocketmolt/internal/wire"
)

// Customers is what the admin API serves about customers; nil leaves its routes out.
type Customers struct {
	Accounts *accounts.Service
	Billing  *billing.Service
	Credits  *credits.Ledger
}

func (a *API) customerRoutes(route func(string, httpapi.HandlerFunc)) {
	if a.Customers == nil {
		return
	}
	route("GET /v1/users", a.listUsers)
	route("GET /v1/users/{ref}", a.getUser)
	route("POST /v1/users/{ref}/disable", a.setUserDisabled(true))
	route("POST /v1/users/{ref}/enable", a.setUserDisabled(false))
	route("POST /v1/users/{ref}/reset-link", a.resetLink)
	route("POST /v1/users/{ref}/grant", a.grant)
	route("GET /v1/users/{ref}/credits", a.getCredits)
	route("POST /v1/users/{ref}/credits", a.adjustCredits)
	route("GET /v1/subscriptions", a.listSubscriptions)
	route("GET /v1/subscriptions/{id}", a.getSubscription)
}

// userNotFound turns the store's not-found into a 404 that names what was asked for.
func userNotFound(ref string, err error) error {
	if errors.Is(err, store.ErrNotFound) {
		return wire.Errorf(wire.CodeNotFound, "no user %q (give an email or a user id)", ref)
	}
	return err
}

// wireUser is a user with their current subscription and assistant.
func (a *API) wireUser(ctx context.Context, u accounts.User) (wire.User, error) {
	w := wire.User{ID: u.ID, Email: u.Email, Disabled: u.Disabled, StripeCustomerID: u.StripeCustomerID, CreatedAt: u.CreatedAt}
	if as, err := a.Store.GetAssistant(ctx, u.ID); err == nil {
		w.Assistant = as.Name
	} else if !errors.Is(err, store.ErrNotFound) {
		return w, err
	}
	x, err := a.Customers.Billing.CurrentSubscription(ctx, u.ID)
	switch {
	case errors.Is(err, store.ErrNotFound):
	case err != nil:
		return w, err
	default:
		w.Plan, w.Status, w.BotID = x.PlanID, x.Status, x.BotID
	}
	return w, nil
}

func (a *API) listUsers(w http.ResponseWriter, r *http.Request) error {
	us, err := a.Customers.Accounts.List(r.Context())
	if err != nil {
		return err
	}
	// Customers' data read by an operator is audited, as a bot's logs are.
	if err := a.audit(r, "users.list", "users", strconv.Itoa(len(us))+" users"); err != nil {
		return err
	}
	out := make([]wire.User, 0, len(us))
	for _, u := range us {
		wu, err := a.wireUser(r.Context(), u)
		if err != nil {
			return err
		}
		out = append(out, wu)
	}
	wire.WriteJSON(w, http.StatusOK, out)
	return nil
}

func (a *API) writeUser(w http.ResponseWriter, r *http.Request, u accounts.User, err error) error {
	if err != nil {
		return userNotFound(r.PathValue("ref"), err)
	}
	wu, err := a.wireUser(r.Context(), u)
	if err != nil {
		return err
	}
	wire.WriteJSON(w, http.StatusOK, wu)
	return nil
}

func (a *API) getUser(w http.ResponseWriter, r *http.Request) error {
	u, err := a.Customers.Accounts.Get(r.Context(), r.PathValue("ref"))
	if err == nil {
		err = a.audit(r, "user.get", u.ID, u.Email)
	}
	return a.writeUser(w, r, u, err)
}

func (a *API) setUserDisabled(disabled bool) httpapi.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) error {
		set := a.Customers.Accounts.Enable
		if disabled {
			set = a.Customers.Accounts.Disable
		}
		u, err := set(r.Context(), actor(r), r.PathValue("ref"))
		return a.writeUser(w, r, u, err)
	}
}

// audit records an operator's read of customers' data.
func (a *API) audit(r *http.Request, action, target, detail string) error {
	_, err := a.Store.AppendAudit(r.Context(), store.AuditEntry{Time: time.Now().UTC(), Actor: actor(r), Action: action, Target: target, Detail: detail})
	return err
}

func (a *API) resetLink(w http.ResponseWriter, r *http.Request) error {
	link, expires, err := a.Customers.Accounts.ResetLink(r.Context(), actor(r), r.PathValue("ref"))
	if err != nil {
		return userNotFound(r.PathValue("ref"), err)
	}
	wire.WriteJSON(w, http.StatusOK, wire.ResetLink{URL: link, ExpiresAt: expires})
	return nil
}

func (a *API) grant(w http.ResponseWriter, r *http.Request) error {
	var req wire.GrantRequest
	if err := httpapi.DecodeStrict(w, r, 4<<10, &req); err != nil {
		return err
	}
	u, err := a.Customers.Accounts.Get(r.Context(), r.PathValue("ref"))
	if err != nil {
		return userNotFound(r.PathValue("ref"), err)
	}
	x, err := a.Customers.Billing.Grant(r.Context(), actor(r), u.ID, req.Plan, req.Days)
	if err != nil {
		return err
	}
	wire.WriteJSON(w, http.StatusCreated, wireSubscription(x, u.Email))
	return nil
}

func wireSubscription(x store.Subscription, email string) wire.Subscription {
	return wire.Subscription{ID: x.ID, UserID: x.UserID, Email: email, Plan: x.PlanID, Source: x.Source, Status: x.Status,
		StripeSubscriptionID: x.StripeSubscriptionID, PeriodStart: x.PeriodStart, PeriodEnd: x.PeriodEnd,
		CancelAtPeriodEnd: x.CancelAtPeriodEnd, PastDueSince: x.PastDueSince, EndedAt: x.EndedAt, BotID: x.BotID,
		CreatedAt: x.CreatedAt, UpdatedAt: x.UpdatedAt}
}

func (a *API) listSubscriptions(w http.ResponseWriter, r *http.Request) error {
	userID := ""
	if ref := r.URL.Query().Get("user"); ref != "" {
		u, err := a.Customers.Accounts.Get(r.Context(), ref)
		if err != nil {
			return userNotFound(ref, err)
		}
		userID = u.ID
	}
	subs, err := a.Store.ListSubscriptions(r.Context(), userID)
	if err != nil {
		return err
	}
	if err := a.audit(r, "subscriptions.list", "subscriptions", "user "+userID); err != nil {
		return err
	}
	emails := map[string]string{}
	out := make([]wire.Subscription, 0, len(subs))
	for _, x := range subs {
		if _, ok := emails[x.UserID]; !ok {
			if u, err := a.Store.GetUser(r.Context(), x.UserID); err == nil {
				emails[x.UserID] = u.Email
			}
		}
		out = append(out, wireSubscription(x, emails[x.UserID]))
	}
	wire.WriteJSON(w, http.StatusOK, out)
	return nil
}

func (a *API) getSubscription(w http.ResponseWriter, r *http.Request) error {
	x, err := a.Store.GetSubscription(r.Context(), r.PathValue("id"))
	if errors.Is(err, store.ErrNotFound) {
		return wire.Errorf(wire.CodeNotFound, "no subscription %q", r.PathValue("id"))
	}
	if err != nil {
		return err
	}
	u, err := a.Store.GetUser(r.Context(), x.UserID)
	if err != nil {
		return err
	}
	if err := a.audit(r, "subscription.get", x.UserID, x.ID); err != nil {
		return err
	}
	wire.WriteJSON(w, http.StatusOK, wireSubscription(x, u.Email))
	return nil
}

func (a *API) writeCredits(w http.ResponseWriter, r *http.Request, u accounts.User) error {
	st, err := a.Customers.Credits.Statement(r.Context(), u.ID)
	if err != nil {
		return err
	}
	out := wire.Credits{UserID: u.ID, Email: u.Email, Balance: st.Balance.String(), Included: st.Included.String(),
		Entries: make([]wire.CreditEntry, 0, len(st.Entries))}
	for _, e := range st.Entries {
		out.Entries = append(out.Entries, wire.CreditEntry{ID: e.ID, Kind: e.Kind, Amount: credits.Amount(e.Amount).String(),
			Reason: e.Reason, Actor: e.Actor, ExpiresAt: e.ExpiresAt, CreatedAt: e.CreatedAt})
	}
	wire.WriteJSON(w, http.StatusOK, out)
	return nil
}

func (a *API) getCredits(w http.ResponseWriter, r *http.Request) error {
	u, err := a.Customers.Accounts.Get(r.Context(), r.PathValue("ref"))
	if err != nil {
		return userNotFound(r.PathValue("ref"), err)
	}
	if err := a.audit(r, "credits.get", u.ID, u.Email); err != nil {
		return err
	}
	return a.writeCredits(w, r, u)
}

func (a *API) adjustCredits(w http.ResponseWriter, r *http.Request) error {
	var req wire.AdjustCreditsRequest
	if err := httpapi.DecodeStrict(w, r, 4<<10, &req); err != nil {
		return err
	}
	amount, err := credits.Parse(req.Amount)
	if err != nil {
		return wire.Errorf(wire.CodeInvalidArgument, "%v", err)
	}
	u, err := a.Customers.Accounts.Get(r.Context(), r.PathValue("ref"))
	if err != nil {
		return userNotFound(r.PathValue("ref"), err)
	}
	if err := a.Customers.Credits.Adjust(r.Context(), actor(r), u.ID, amount, req.Reason); err != nil {
		return err
	}
	a.Bots.CreditsChanged(r.Context(), u.ID)
	return a.writeCredits(w, r, u)
}
