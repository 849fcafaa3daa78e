package store

import (
	"errors"
	"testing"
	"time"
)

func TestCustomers(t *testing.T) {
	for _, b := range backends() {
		t.Run(b.name, func(t *testing.T) {
			t.Parallel()
			s := openURL(t, b.newURL(t))
			ctx := t.Context()
			now := ts(0)

			u := User{ID: "u-1", Email: "ada@example.com", PasswordHash: "h", CreatedAt: now, UpdatedAt: now}
			if err := s.CreateUser(ctx, u); err != nil {
				t.Fatal(err)
			}
			if err := s.CreateUser(ctx, User{ID: "u-2", Email: u.Email, PasswordHash: "h", CreatedAt: now, UpdatedAt: now}); !errors.Is(err, ErrConflict) {
				t.Fatalf("a second user with the same email: %v, want ErrConflict", err)
			}
			if err := s.CreateUser(ctx, User{ID: "u-2", Email: "bob@example.com", PasswordHash: "h", CreatedAt: now.Add(time.Second), UpdatedAt: now}); err != nil {
				t.Fatal(err)
			}
			if got, err := s.GetUserByEmail(ctx, "ada@example.com"); err != nil || got.ID != "u-1" || got.StripeCustomerID != "" {
				t.Fatalf("GetUserByEmail = %+v, %v", got, err)
			}
			if _, err := s.GetUserByEmail(ctx, "nobody@example.com"); !errors.Is(err, ErrNotFound) {
				t.Fatalf("unknown email: %v", err)
			}
			if err := s.SetUserStripeCustomer(ctx, "u-1", "cus_1", now); err != nil {
				t.Fatal(err)
			}
			if err := s.SetUserStripeCustomer(ctx, "u-2", "cus_1", now); !errors.Is(err, ErrConflict) {
				t.Fatalf("a Stripe customer for two users: %v, want ErrConflict", err)
			}
			if got, err := s.GetUserByStripeCustomer(ctx, "cus_1"); err != nil || got.ID != "u-1" {
				t.Fatalf("GetUserByStripeCustomer = %+v, %v", got, err)
			}
			if err := s.SetUserDisabled(ctx, "u-2", true, now); err != nil {
				t.Fatal(err)
			}
			if err := s.SetUserDisabled(ctx, "u-9", true, now); !errors.Is(err, ErrNotFound) {
				t.Fatalf("disable a missing user: %v", err)
			}
			us, err := s.ListUsers(ctx)
			if err != nil || len(us) != 2 || us[0].ID != "u-1" || !us[1].Disabled {
				t.Fatalf("ListUsers = %+v, %v", us, err)
			}

			// Sessions and resets.
			if err := s.CreateWebSession(ctx, WebSession{IDHash: "s1", UserID: "u-1", CSRF: "c", CreatedAt: now, ExpiresAt: now.Add(time.Hour)}); err != nil {
				t.Fatal(err)
			}
			if err := s.CreateWebSession(ctx, WebSession{IDHash: "s2", UserID: "u-9", CSRF: "c", CreatedAt: now, ExpiresAt: now}); !errors.Is(err, ErrNotFound) {
				t.Fatalf("a session of a missing user: %v", err)
			}
			if ws, err := s.GetWebSession(ctx, "s1"); err != nil || ws.UserID != "u-1" || !ws.ExpiresAt.Equal(now.Add(time.Hour)) {
				t.Fatalf("GetWebSession = %+v, %v", ws, err)
			}
			if err := s.CreatePasswordReset(ctx, PasswordReset{TokenHash: "r1", UserID: "u-1", CreatedAt: now, ExpiresAt: now.Add(time.Hour)}); err != nil {
				t.Fatal(err)
			}
			if _, err := s.UsePasswordReset(ctx, "r1", now.Add(2*time.Hour)); !errors.Is(err, ErrTokenExpired) {
				t.Fatalf("an expired reset: %v", err)
			}
			if pr, err := s.UsePasswordReset(ctx, "r1", now.Add(time.Minute)); err != nil || pr.UserID != "u-1" {
				t.Fatalf("UsePasswordReset = %+v, %v", pr, err)
			}
			if _, err := s.UsePasswordReset(ctx, "r1", now.Add(time.Minute)); !errors.Is(err, ErrTokenUsed) {
				t.Fatalf("a reset used twice: %v", err)
			}
			if _, err := s.UsePasswordReset(ctx, "nope", now); !errors.Is(err, ErrNotFound) {
				t.Fatalf("an unknown reset: %v", err)
			}
			if err := s.DeleteExpiredWebSessions(ctx, now.Add(2*time.Hour)); err != nil {
				t.Fatal(err)
			}
			if _, err := s.GetWebSession(ctx, "s1"); !errors.Is(err, ErrNotFound) {
				t.Fatalf("an expired session was kept: %v", err)
			}

			// The assistant: put twice replaces; a WhatsApp number belongs to one customer.
			a := Assistant{UserID: "u-1", Name: "Jeeves", PlanID: "starter", Model: "anthropic/claude-sonnet-4-5", WhatsApp: "+4915112345678",
				WebChat: true, KeyMode: "credits", Secrets: "sealed", Updated: now}
			if err := s.PutAssistant(ctx, a); err != nil {
				t.Fatal(err)
			}
			a.Name = "Alfred"
			if err := s.PutAssistant(ctx, a); err != nil {
				t.Fatal(err)
			}
			if got, err := s.GetAssistantByWhatsApp(ctx, "+4915112345678"); err != nil || got.Name != "Alfred" || !got.WebChat || got.Telegram {
				t.Fatalf("GetAssistantByWhatsApp = %+v, %v", got, err)
			}
			b := a
			b.UserID = "u-2"
			if err := s.PutAssistant(ctx, b); !errors.Is(err, ErrConflict) {
				t.Fatalf("a WhatsApp number for two customers: %v, want ErrConflict", err)
			}
			b.WhatsApp = ""
			if err := s.PutAssistant(ctx, b); err != nil {
				t.Fatalf("two customers without WhatsApp: %v", err)
			}

			// Subscriptions.
			end := now.Add(30 * 24 * time.Hour)
			sub := Subscription{ID: "s-1", UserID: "u-1", PlanID: "starter", Source: SourceStripe, Status: "active",
				StripeSubscriptionID: "sub_1", PeriodStart: &now, PeriodEnd: &end, CreatedAt: now, UpdatedAt: now}
			if err := s.PutSubscription(ctx, sub); err != nil {
				t.Fatal(err)
			}
			sub.Status, sub.BotID, sub.CancelAtPeriodEnd = "past_due", "b-1", true
			sub.PastDueSince = &now
			if err := s.PutSubscription(ctx, sub); err != nil {
				t.Fatal(err)
			}
			got, err := s.GetSubscriptionByStripeID(ctx, "sub_1")
			if err != nil || got.Status != "past_due" || got.BotID != "b-1" || !got.CancelAtPeriodEnd || got.PastDueSince == nil || !got.PeriodEnd.Equal(end) {
				t.Fatalf("GetSubscriptionByStripeID = %+v, %v", got, err)
			}
			dup := sub
			dup.ID = "s-2"
			if err := s.PutSubscription(ctx, dup); !errors.Is(err, ErrConflict) {
				t.Fatalf("two rows for one Stripe subscription: %v", err)
			}
			grant := Subscription{ID: "s-3", UserID: "u-2", PlanID: "starter", Source: SourceGrant, Status: "active", CreatedAt: now.Add(time.Second), UpdatedAt: now}
			if err := s.PutSubscription(ctx, grant); err != nil {
				t.Fatal(err)
			}
			if all, err := s.ListSubscriptions(ctx, ""); err != nil || len(all) != 2 || all[0].ID != "s-3" {
				t.Fatalf("ListSubscriptions = %+v, %v", all, err)
			}
			if sweep, err := s.ListSubscriptionsToSweep(ctx); err != nil || len(sweep) != 1 || sweep[0].ID != "s-1" {
				t.Fatalf("ListSubscriptionsToSweep = %+v, %v", sweep, err)
			}

			// Checkouts.
			if err := s.PutCheckout(ctx, Checkout{UserID: "u-1", PlanID: "starter", StripeID: "cs_1", URL: "https://x", ExpiresAt: end}); err != nil {
				t.Fatal(err)
			}
			if err := s.PutCheckout(ctx, Checkout{UserID: "u-1", PlanID: "pro", StripeID: "cs_2", URL: "https://y", ExpiresAt: end}); err != nil {
				t.Fatal(err)
			}
			if c, err := s.GetCheckout(ctx, "u-1"); err != nil || c.StripeID != "cs_2" {
				t.Fatalf("GetCheckout = %+v, %v", c, err)
			}

			// Events are recorded once.
			for i, want := range []bool{true, false} {
				if fresh, err := s.RecordStripeEvent(ctx, "evt_1", "invoice.paid", now); err != nil || fresh != want {
					t.Fatalf("RecordStripeEvent #%d = %t, %v", i, fresh, err)
				}
			}

			// The ledger: an idempotency key adds once; NULL keys always add.
			for i, want := range []bool{true, false} {
				ok, err := s.AppendCredit(ctx, CreditEntry{UserID: "u-1", Kind: CreditGrant, Amount: 10_000_000, Reason: "period", Actor: "stripe",
					IdempotencyKey: "grant:s-1:1", ExpiresAt: &end, CreatedAt: now})
				if err != nil || ok != want {
					t.Fatalf("AppendCredit #%d = %t, %v", i, ok, err)
				}
			}
			for range 2 {
				if ok, err := s.AppendCredit(ctx, CreditEntry{UserID: "u-1", Kind: CreditAdjust, Amount: -1, Reason: "x", Actor: "op", CreatedAt: now}); err != nil || !ok {
					t.Fatalf("AppendCredit without a key = %t, %v", ok, err)
				}
			}
			if _, err := s.AppendCredit(ctx, CreditEntry{UserID: "u-9", Kind: CreditAdjust, Amount: 1, Reason: "x", Actor: "op", CreatedAt: now}); !errors.Is(err, ErrNotFound) {
				t.Fatalf("credit for a missing user: %v", err)
			}
			es, err := s.ListCredits(ctx, "u-1")
			if err != nil || len(es) != 3 || es[0].IdempotencyKey != "grant:s-1:1" || es[0].ExpiresAt == nil || es[2].Amount != -1 {
				t.Fatalf("ListCredits = %+v, %v", es, err)
			}

			// Deleting a user takes everything of theirs.
			if err := s.DeleteUser(ctx, "u-1"); err != nil {
				t.Fatal(err)
			}
			if es, err := s.ListCredits(ctx, "u-1"); err != nil || len(es) != 0 {
				t.Fatalf("credits of a deleted user: %+v, %v", es, err)
			}
			if _, err := s.GetSubscription(ctx, "s-1"); !errors.Is(err, ErrNotFound) {
				t.Fatalf("subscription of a deleted user: %v", err)
			}
			if _, err := s.GetAssistant(ctx, "u-1"); !errors.Is(err, ErrNotFound) {
				t.Fatalf("assistant of a deleted user: %v", err)
			}
		})
	}
}
