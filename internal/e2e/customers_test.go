package e2e_test

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/cookiejar"
	"strings"
	"testing"

	"github.com/pocketmolt/pocketmolt/internal/billing"
	"github.com/pocketmolt/pocketmolt/internal/wire"
)

// TestOperatorsManageCustomers drives pmctl users, subs and credits against a real pmd in
// test billing mode: what each prints, that each change is in the audit log, and that a reset
// link pmctl prints works once.
func TestOperatorsManageCustomers(t *testing.T) {
	p := startPMD(t, nil)
	cfg := p.ctlConfig(t)
	ctx := t.Context()
	ctl := func(args ...string) string {
		t.Helper()
		code, out, errOut := pmctlRun(t, cfg, args...)
		if code != 0 {
			t.Fatalf("pmctl %s: exit %d: %s", strings.Join(args, " "), code, errOut)
		}
		return out
	}
	ctlJSON := func(v any, args ...string) {
		t.Helper()
		if err := json.Unmarshal([]byte(ctl(append(args, "-o", "json")...)), v); err != nil {
			t.Fatalf("pmctl %s: %v", strings.Join(args, " "), err)
		}
	}

	u, err := p.D.Accounts.Signup(ctx, "Grace@Example.com", "correct horse battery staple", "127.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	if err := p.D.Billing.SaveAssistant(ctx, u.ID, billing.AssistantInput{Name: "Hopper", PlanID: "personal",
		Model: "anthropic/claude-sonnet-4-6", WebChat: true, KeyMode: billing.KeyBYOK, APIKey: testAPIKey}); err != nil {
		t.Fatal(err)
	}

	if out := ctl("users", "get", "grace@example.com"); !strings.Contains(out, "Hopper") {
		t.Fatalf("users get = %s", out)
	}
	var users []wire.User
	ctlJSON(&users, "users", "list")
	if len(users) != 1 || users[0].Email != "grace@example.com" || users[0].Assistant != "Hopper" || users[0].Plan != "" {
		t.Fatalf("users list = %+v", users)
	}

	// A grant: a subscription without Stripe, its bot waiting for a host (there is none).
	var sub wire.Subscription
	ctlJSON(&sub, "users", "grant", "grace@example.com", "--plan", "personal", "--days", "30")
	if sub.Source != "grant" || sub.Status != "active" || sub.BotID == "" || sub.Email != "grace@example.com" {
		t.Fatalf("grant = %+v", sub)
	}
	if code, _, errOut := pmctlRun(t, cfg, "users", "grant", u.ID, "--plan", "personal", "--days", "30"); code == 0 || !strings.Contains(errOut, "live subscription") {
		t.Fatalf("a second grant: exit %d, %s", code, errOut)
	}
	if code, _, errOut := pmctlRun(t, cfg, "users", "grant", u.ID, "--plan", "gold", "--days", "30"); code == 0 || !strings.Contains(errOut, "no plan") {
		t.Fatalf("a grant of an unknown plan: exit %d, %s", code, errOut)
	}
	var subs []wire.Subscription
	ctlJSON(&subs, "subs", "list", "--user", "grace@example.com")
	if len(subs) != 1 || subs[0].ID != sub.ID {
		t.Fatalf("subs list = %+v", subs)
	}
	if out := ctl("subs", "get", sub.ID); !strings.Contains(out, "grant") {
		t.Fatalf("subs get = %s", out)
	}
	b, err := p.admin().GetBot(ctx, sub.BotID)
	if err != nil || b.Status != wire.BotWaiting || b.Owner != "customer:"+u.ID {
		t.Fatalf("the granted bot: %+v, %v", b, err)
	}

	// Credits: the plan's included credits (kept for a switch from their own key), and an
	// operator's adjustment on top.
	var cr wire.Credits
	ctlJSON(&cr, "credits", "adjust", u.ID, "--amount", "2.50", "--reason", "sorry for the outage")
	if cr.Balance != "12.50" || len(cr.Entries) != 2 {
		t.Fatalf("credits after the adjustment = %+v", cr)
	}
	ctlJSON(&cr, "credits", "get", "grace@example.com")
	if cr.Balance != "12.50" || cr.Included != "10.00" {
		t.Fatalf("credits get = %+v", cr)
	}
	if code, _, errOut := pmctlRun(t, cfg, "credits", "adjust", u.ID, "--amount", "1"); code == 0 || !strings.Contains(errOut, "reason") {
		t.Fatalf("an adjustment without a reason: exit %d, %s", code, errOut)
	}

	// Disable: they can no longer log in; enable: they can.
	ctl("users", "disable", u.ID, "--yes")
	if _, err := p.D.Accounts.Login(ctx, "grace@example.com", "correct horse battery staple", "127.0.0.2"); err == nil {
		t.Fatal("a disabled customer logged in")
	}
	ctl("users", "enable", u.ID)
	if _, err := p.D.Accounts.Login(ctx, "grace@example.com", "correct horse battery staple", "127.0.0.3"); err != nil {
		t.Fatalf("an enabled customer: %v", err)
	}

	// A reset link works once, on pmd's public listener.
	link := strings.TrimSpace(ctl("users", "reset-link", "grace@example.com"))
	if !strings.HasPrefix(link, p.D.PublicURL+"/reset?token=") {
		t.Fatalf("reset-link printed %q", link)
	}
	jar, _ := cookiejar.New(nil)
	resp, err := (&http.Client{Jar: jar}).Get(link)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !strings.Contains(string(body), "password") {
		t.Fatalf("GET %s: %d", link, resp.StatusCode)
	}

	if code, _, errOut := pmctlRun(t, cfg, "users", "get", "nobody@example.com"); code == 0 || !strings.Contains(errOut, "no user") {
		t.Fatalf("an unknown user: exit %d, %s", code, errOut)
	}

	audit, err := p.admin().ListAudit(ctx, 50)
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	for _, e := range audit {
		if strings.HasPrefix(e.Actor, "admin:") {
			seen[e.Action] = true
		}
	}
	for _, want := range []string{"subscription.grant", "credits.adjust", "user.disable", "user.enable", "user.reset-link",
		"users.list", "user.get", "subscriptions.list", "subscription.get", "credits.get"} {
		if !seen[want] {
			t.Errorf("no %s by an admin in the audit log: %+v", want, audit)
		}
	}
}
