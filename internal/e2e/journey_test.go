package e2e_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/pocketmolt/pocketmolt/internal/billing"
	"github.com/pocketmolt/pocketmolt/internal/wire"
)

// journeyPeriod is a period of test billing in the journey: long enough for the bot to
// reach running, be restarted and be cancelled first, short enough to watch it end. Should
// Docker be so slow that the cancel comes after the first period, test billing renews once
// and the second period ends it; the wait for the end allows for that.
const journeyPeriod = 40 * time.Second

const (
	journeyEmail       = "ada.journey@example.com"
	journeyPassword    = "violet harbour lantern 42"
	journeyWeak        = "password123" // long enough, but on the list of common passwords
	journeyPlatformKey = "sk-ant-platform-journey-0123456789abcdef"
	journeyModel       = "anthropic/claude-haiku-4-5"
)

// journeyPlans are two plans as a small operator might sell them, with 1 GiB bots so that
// the test host's capacity fits them; only Anthropic has a platform key, so included credits
// are offered for Anthropic's models.
func journeyPlans() []billing.Plan {
	models := []string{"anthropic/claude-sonnet-4-6", journeyModel, "openai/gpt-5-mini"}
	return []billing.Plan{
		{ID: "personal", Name: "Personal", Description: "Your own assistant on Telegram, WhatsApp and the web.",
			Price: "19.00", Currency: "eur", IncludedCredits: "10.00", Placement: billing.PlacementShared,
			Memory: "1GiB", CPUs: 1, PIDs: 256, Models: models, ToolsProfile: "messaging"},
		{ID: "pro", Name: "Pro", Description: "More room for research and long conversations.",
			Price: "39.00", Currency: "eur", IncludedCredits: "25.00", Placement: billing.PlacementShared,
			Memory: "1GiB", CPUs: 1, PIDs: 256, Models: models, ToolsProfile: "messaging"},
	}
}

// TestCustomerJourneyInChromium is a customer's whole life with PocketMolt in a real headless
// Chromium, against a real pmd on loopback in test billing mode and a real Docker agent
// running the stand-in gateway: the landing page, sign-up (a weak password first),
// onboarding (a malformed Telegram token first), Subscribe, the dashboard following the bot
// to running without a reload while the admin API sees it running and healthy, Restart,
// Cancel, the period's end stopping the bot, log out, log in (a wrong password first), and
// deleting the account, after which the bot, its container and the account are gone.
func TestCustomerJourneyInChromium(t *testing.T) {
	d := engine(t)
	keyFile := filepath.Join(t.TempDir(), "anthropic.key")
	if err := os.WriteFile(keyFile, []byte(journeyPlatformKey+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	p := startPMD(t, func(c *pmdConfig) {
		c.BotImage = testImage
		c.BotStartTimeout = 2 * time.Minute
		c.BillingTestMode, c.BillingTestPeriod = true, journeyPeriod
		c.AnthropicAPIKeyFile = keyFile
		c.Plans = journeyPlans()
	})
	a := p.enrollDocker("edge-1", d, wire.Capacity{Bots: 4, MemoryBytes: 8 << 30})
	p.waitStatus("edge-1", wire.HostOnline)
	ctx := t.Context()
	admin := p.admin()

	j := newJourneyBrowser(t, p.D.PublicURL)
	start := time.Now()
	defer func() {
		t.Logf("journey took %v; screenshots:\n\t%s", time.Since(start).Round(100*time.Millisecond), strings.Join(j.pngs, "\n\t"))
	}()

	// The landing page sells the configured plans at their prices.
	j.open("open the landing page", "/", "body.page-landing")
	j.Step("the plans and prices are on the landing page",
		textHas("#plans", "Personal", "€19.00", "Pro", "€39.00", "$10.00", "$25.00", "Claude Haiku 4.5 · Anthropic"),
		textHas(".testbanner", "Test billing"),
		textHas("#how", "How it works"),
	)
	j.shot("landing")

	// Sign-up: a common password is refused next to its field; the email stays, the
	// password does not.
	j.follow("choose the Personal plan", `a[href="/signup?plan=personal"]`, "body.page-signup")
	j.Step("the sign-up page names the chosen plan", textHas("main", "Personal", "€19.00"))
	j.shot("signup")
	j.follow("sign up with a weak password", `button[name=signup]`, "#password-error",
		chromedp.SendKeys(chromedp.ID("email"), journeyEmail),
		chromedp.SendKeys(chromedp.ID("password"), journeyWeak),
	)
	j.Step("the error is next to the password, the email kept and the password not",
		textHas("#password-error", "common"),
		textHas("#form-error", "fix what is marked"),
		valueIs("#email", journeyEmail),
		valueIs("#password", ""),
		waitJS("the password marked invalid", `document.getElementById('password').getAttribute('aria-invalid') === 'true'`),
	)
	j.shot("signup-weak-password")
	j.follow("sign up", `button[name=signup]`, "body.page-setup",
		chromedp.SendKeys(chromedp.ID("password"), journeyPassword),
	)
	if _, err := admin.GetUser(ctx, journeyEmail); err != nil {
		j.fail("the account is not there after sign-up: %v", err)
	}

	// Onboarding: the plan chosen on the landing page is preselected; a malformed Telegram
	// token is refused next to its field, and what was typed (except the token) is kept.
	j.Step("onboarding starts with the chosen plan", waitJS("the Personal plan checked", `document.getElementById('plan-personal').checked`))
	j.shot("setup")
	j.follow("save with a malformed Telegram token", `button[name=save]`, "#telegram_token-error",
		chromedp.SendKeys(chromedp.ID("name"), "Molt"),
		chromedp.SetValue(chromedp.ID("model"), journeyModel),
		chromedp.Click(chromedp.ID("telegram")),
		chromedp.SendKeys(chromedp.ID("telegram_token"), "12345:not-a-token"),
		chromedp.Click(chromedp.ID("key_mode-credits")),
	)
	j.Step("the error is next to the token, the other choices kept and the token not",
		textHas("#telegram_token-error", "not a bot token"),
		valueIs("#name", "Molt"),
		valueIs("#model", journeyModel),
		valueIs("#telegram_token", ""),
		waitJS("Telegram, web chat, included credits and Personal still chosen",
			`document.getElementById('telegram').checked && document.getElementById('web_chat').checked &&
			 document.getElementById('key_mode-credits').checked && document.getElementById('plan-personal').checked`),
	)
	j.shot("setup-bad-telegram-token")
	j.follow("save the assistant", `button[name=save]`, "body.page-dashboard",
		chromedp.SendKeys(chromedp.ID("telegram_token"), testTelegram),
	)
	j.Step("the dashboard offers to subscribe",
		textHas(".notice", "settings are saved"),
		textHas("h1", "Molt"),
		textHas("#stage-label", "Waiting for payment"),
		textHas(".details", "Personal", "€19.00", "Claude Haiku 4.5", "Telegram", "Web chat", "Included credits"),
		textHas("button[name=subscribe]", "€19.00"),
		textHas(".testbanner", "Test billing", "no card is charged"),
	)
	j.shot("dashboard-before-subscribe")

	// Subscribe: test billing turns the plan on at once. From here the page is left alone:
	// a marker set on it now must still be there when the status says running, and every
	// stage the status shows is recorded as it changes.
	subscribed := time.Now()
	j.follow("subscribe", `button[name=subscribe]`, "#stage")
	j.Step("the subscription is active in test billing, and the page is watched",
		textHas(".testbanner", "Test billing", "no card is charged"),
		textHas("#subscription-status", "Active", "test billing"),
		textHas(".details", "Renews on", "$10.00"),
		js(`window.__pmSamePage = 'subscribed';
			window.__pmStages = [document.getElementById('stage').dataset.stage];
			new MutationObserver(function () {
				var s = document.getElementById('stage').dataset.stage;
				if (window.__pmStages[window.__pmStages.length - 1] !== s) { window.__pmStages.push(s); }
			}).observe(document.getElementById('stage'), { attributes: true, attributeFilter: ['data-stage'] });`),
	)
	if first := j.eval(`window.__pmStages[0]`); first == billing.StageRunning || first == billing.StageWaitingPayment {
		j.fail("right after Subscribe the status is %q; want a stage on the way to running", first)
	}
	j.shot("dashboard-subscribed")
	u, err := admin.GetUser(ctx, journeyEmail)
	if err != nil || u.BotID == "" || u.Status != "active" {
		j.fail("after Subscribe the admin API shows the customer as %+v, %v", u, err)
	}
	botID := u.BotID

	j.waitFor("the live status reaches running", 3*time.Minute, `document.getElementById('stage').dataset.stage === 'running'`,
		textHas("#stage-label", "Running"),
		textHas("#stage-text", "Your assistant is running."),
	)
	if mark := j.eval(`window.__pmSamePage`); mark != "subscribed" {
		j.fail("the page was reloaded on the way to running (marker %q); the status must change in place", mark)
	}
	stages := j.eval(`window.__pmStages.join(' → ')`)
	t.Logf("the dashboard showed, without a reload: %s (running %v after Subscribe was pressed)", stages, time.Since(subscribed).Round(100*time.Millisecond))
	b := p.waitBot(botID, 2*time.Minute, "running and healthy", running)
	if b.Owner != "customer:"+u.ID || b.Model != journeyModel || !b.Telegram || b.Resources.MemoryBytes != 1<<30 || b.HostName != "edge-1" {
		j.fail("the customer's bot is %+v", b)
	}
	j.shot("dashboard-running")

	// Restart: the container starts again, and the page comes back to running.
	j.follow("restart", `button[name=restart]`, ".notice")
	j.Step("the page says the assistant is restarting", textHas(".notice", "restarting"))
	restarted := p.waitBot(botID, 2*time.Minute, "a new start after Restart", func(x wire.Bot) bool {
		return running(x) && (x.Restarts > b.Restarts || x.StartedAt != nil && b.StartedAt != nil && !x.StartedAt.Equal(*b.StartedAt))
	})
	t.Logf("restart: started at %v (restarts %d), then %v (restarts %d)", b.StartedAt, b.Restarts, restarted.StartedAt, restarted.Restarts)
	j.waitFor("running again after the restart", 2*time.Minute, `document.getElementById('stage').dataset.stage === 'running'`)
	j.shot("dashboard-restarted")

	// Cancel: at the end of the period, which the page names.
	cancelled := time.Now()
	j.follow("cancel", `button[name=cancel]`, ".notice")
	j.Step("the page says the subscription ends at the end of the period",
		textHas(".notice", "will end at the end of this period"),
		textHas(".details", "Ends on"),
		chromedp.WaitVisible(chromedp.CSS("button[name=resume]")),
		absent("button[name=cancel]"),
	)
	subs, err := admin.ListSubscriptions(ctx, journeyEmail)
	if err != nil || len(subs) != 1 || !subs[0].CancelAtPeriodEnd || subs[0].Status != "active" {
		j.fail("after Cancel the subscriptions are %+v, %v", subs, err)
	}
	j.shot("dashboard-cancelled")

	// The period ends: the page (which reloads itself when its buttons change) shows the
	// assistant stopped, and the bot is stopped on its host.
	j.waitFor("the period ends and the page shows the assistant stopped", 2*journeyPeriod+time.Minute,
		`document.getElementById('stage').dataset.stage === 'stopped'`,
		textHas("#stage-label", "Stopped"),
		textHas("#subscription-status", "Ended"),
		chromedp.WaitVisible(chromedp.CSS("button[name=subscribe]")),
		absent("button[name=restart]"),
	)
	t.Logf("the page showed the assistant stopped %v after Subscribe (a %v period), %v after Cancel",
		time.Since(subscribed).Round(100*time.Millisecond), journeyPeriod, time.Since(cancelled).Round(100*time.Millisecond))
	stopped := p.waitBot(botID, 2*time.Minute, "desired stopped, and stopped", func(x wire.Bot) bool {
		return x.Desired == wire.DesiredStopped && x.Status == wire.BotStopped
	})
	if stopped.ContainerID == "" {
		j.fail("the stopped bot has no container: %+v", stopped)
	}
	if st, _ := dig(dockerInspect(t, stopped.ContainerID), "State", "Running").(bool); st {
		j.fail("the container %s still runs after the period ended", stopped.ContainerID)
	}
	j.shot("dashboard-stopped")

	// Log out, and in again: a wrong password gets the very message an unknown email gets.
	j.follow("log out", `button[name=logout]`, "body.page-landing")
	j.Step("the landing page says goodbye", textHas(".notice", "logged out"), absent("button[name=logout]"))
	j.shot("logged-out")
	j.follow("open the login page", `header a[href="/login"]`, "body.page-login")
	j.follow("log in as someone unknown", `button[name=login]`, "#form-error",
		chromedp.SendKeys(chromedp.ID("email"), "nobody.journey@example.com"),
		chromedp.SendKeys(chromedp.ID("password"), journeyPassword),
	)
	unknown := j.text("#form-error")
	j.follow("log in with a wrong password", `button[name=login]`, "#form-error",
		chromedp.SetValue(chromedp.ID("email"), journeyEmail),
		chromedp.SendKeys(chromedp.ID("password"), "wrong horse battery staple"),
	)
	wrong := j.text("#form-error")
	if unknown == "" || wrong != unknown {
		j.fail("a wrong password says %q, an unknown email %q; want one message for both", wrong, unknown)
	}
	j.Step("the email is kept, the password not", valueIs("#email", journeyEmail), valueIs("#password", ""))
	j.shot("login-wrong-password")
	j.follow("log in", `button[name=login]`, "body.page-dashboard",
		chromedp.SendKeys(chromedp.ID("password"), journeyPassword),
	)
	j.Step("the dashboard shows the stopped assistant", textHas("h1", "Molt"), textHas("#stage-label", "Stopped"))

	// Delete the account: the page asks for the email, and refuses another.
	j.follow("open the delete page", "#delete-link", "body.page-delete")
	j.Step("the page asks to type the email", textHas("label[for=email]", journeyEmail), textHas("h1", "Delete your account"))
	j.shot("delete-confirm")
	j.follow("confirm with another email", `button[name=delete]`, "#email-error",
		chromedp.SendKeys(chromedp.ID("email"), "someone.else@example.com"),
	)
	j.Step("the error names the email to type", textHas("#email-error", journeyEmail))
	if _, err := admin.GetUser(ctx, journeyEmail); err != nil {
		j.fail("a refused confirmation deleted the account: %v", err)
	}
	j.shot("delete-wrong-email")
	j.follow("delete the account", `button[name=delete]`, "body.page-landing",
		chromedp.SetValue(chromedp.ID("email"), journeyEmail),
	)
	j.Step("the landing page confirms the deletion", textHas(".notice", "account, your assistant and its data are deleted"), absent("button[name=logout]"))
	j.shot("deleted")
	j.open("the dashboard is closed to the deleted account", "/app", "body.page-login")

	// The bot, its container and the account are gone.
	eventually(t, time.Minute, "the bot gone", func() bool {
		_, err := admin.GetBot(ctx, botID)
		return wire.CodeOf(err) == wire.CodeNotFound
	})
	if _, err := admin.GetUser(ctx, journeyEmail); wire.CodeOf(err) != wire.CodeNotFound {
		t.Fatalf("the deleted account: %v, want not found", err)
	}
	eventually(t, time.Minute, "the bot's container gone", func() bool {
		cs, err := d.List(ctx, a.hostID())
		return err == nil && len(cs) == 0
	})

	// Nothing secret reached a log.
	for name, logs := range map[string]string{"pmd": p.Logs.String(), "agent": a.Logs.String()} {
		for _, secret := range []string{journeyPassword, journeyWeak, testTelegram, journeyPlatformKey} {
			if strings.Contains(logs, secret) {
				t.Errorf("the %s log holds a secret the customer typed or the platform's key (%.6s…)", name, secret)
			}
		}
	}
}
