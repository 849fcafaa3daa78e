package web

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/pocketmolt/pocketmolt/internal/billing"
	"github.com/pocketmolt/pocketmolt/internal/store"
	"github.com/pocketmolt/pocketmolt/internal/wire"
)

// fakeBilling is a Billing in memory: a fake at our own interface, for the pages' tests. The
// real *billing.Service is tested in its package and with these pages in the browser journey.
type fakeBilling struct {
	st    *store.Store // DeleteCustomer deletes the user row, as the real one does
	plans []billing.Plan
	test  bool
	now   func() time.Time

	mu        sync.Mutex
	customers map[string]*fakeCustomer
	fail      map[string]error // method name → error returned by its next call
	calls     []string
}

type fakeCustomer struct {
	in        billing.AssistantInput // as last saved, secrets included
	saved     bool
	sub       *billing.SubscriptionView
	stage     string
	bot       bool
	restarts  int
	checkouts []string
}

func testPlans() []billing.Plan {
	return []billing.Plan{
		{ID: "starter", Name: "Starter", Description: "For one person and their everyday questions.", Price: "19.00", Currency: "eur",
			IncludedCredits: "5.00", Placement: billing.PlacementShared,
			Models: []string{"anthropic/claude-haiku-4-5", "openai/gpt-5-mini"}},
		{ID: "pro", Name: "Pro", Description: "More usage, stronger models, a server of its own.", Price: "49.00", Currency: "eur",
			IncludedCredits: "20.00", Placement: billing.PlacementDedicated,
			Models: []string{"anthropic/claude-sonnet-4-5", "anthropic/claude-haiku-4-5"}},
	}
}

func newFakeBilling(st *store.Store, test bool, now func() time.Time) *fakeBilling {
	return &fakeBilling{st: st, plans: testPlans(), test: test, now: now, customers: map[string]*fakeCustomer{}, fail: map[string]error{}}
}

var _ Billing = (*fakeBilling)(nil)

func (f *fakeBilling) Plans() []billing.Plan { return f.plans }
func (f *fakeBilling) TestMode() bool        { return f.test }

// call records a call and returns the error set for it, if any.
func (f *fakeBilling) call(name string) error {
	f.calls = append(f.calls, name)
	if err, ok := f.fail[name]; ok {
		delete(f.fail, name)
		return err
	}
	return nil
}

func (f *fakeBilling) failNext(method string, err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.fail[method] = err
}

func (f *fakeBilling) called(method string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	n := 0
	for _, c := range f.calls {
		if c == method {
			n++
		}
	}
	return n
}

func (f *fakeBilling) customer(userID string) *fakeCustomer {
	c, ok := f.customers[userID]
	if !ok {
		c = &fakeCustomer{}
		f.customers[userID] = c
	}
	return c
}

// snapshot returns a copy of a customer's state.
func (f *fakeBilling) snapshot(userID string) fakeCustomer {
	f.mu.Lock()
	defer f.mu.Unlock()
	return *f.customer(userID)
}

func (f *fakeBilling) setStage(userID, stage string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.customer(userID).stage = stage
}

// takenNumber is a WhatsApp number another customer has: SaveAssistant refuses it, as the
// real service does.
const takenNumber = "+4915100000000"

func (f *fakeBilling) SaveAssistant(_ context.Context, userID string, in billing.AssistantInput) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.call("SaveAssistant"); err != nil {
		return err
	}
	if in.WhatsApp == takenNumber {
		return billing.FieldErrors{"whatsapp": "another account uses this number"}
	}
	c := f.customer(userID)
	old := c.in
	c.in, c.saved = in, true
	if in.TelegramToken == "" {
		c.in.TelegramToken = old.TelegramToken
	}
	if in.APIKey == "" && in.KeyMode == billing.KeyBYOK {
		c.in.APIKey = old.APIKey
	}
	return nil
}

var stageTexts = map[string]string{
	billing.StageOnboarding:     "Set up your assistant to begin.",
	billing.StageWaitingPayment: "Subscribe, and your assistant starts.",
	billing.StagePending:        "Your assistant is placed on a server and starts shortly.",
	billing.StagePulling:        "Downloading your assistant.",
	billing.StageStarting:       "Starting your assistant.",
	billing.StageRunning:        "Your assistant is running.",
	billing.StageStopped:        "Your assistant is stopped.",
}

func (f *fakeBilling) Overview(_ context.Context, userID string) (billing.Overview, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.call("Overview"); err != nil {
		return billing.Overview{}, err
	}
	c := f.customer(userID)
	ov := billing.Overview{UserID: userID, TestMode: f.test, Stage: billing.StageOnboarding}
	if c.saved {
		in := c.in
		av := &billing.AssistantView{Name: in.Name, PlanID: in.PlanID, Model: in.Model, Telegram: in.Telegram,
			WhatsApp: in.WhatsApp, WebChat: in.WebChat, KeyMode: in.KeyMode}
		for _, p := range f.plans {
			if p.ID == in.PlanID {
				av.PlanName = p.Name
			}
		}
		if in.KeyMode == billing.KeyBYOK && len(in.APIKey) >= 4 {
			av.KeyLast4 = in.APIKey[len(in.APIKey)-4:]
		} else {
			ov.CreditsLeft = "$5.00"
		}
		ov.Assistant = av
		ov.Stage = billing.StageWaitingPayment
	}
	if c.sub != nil {
		sub := *c.sub
		ov.Subscription = &sub
		ov.Stage = c.stage
	}
	if c.bot {
		ov.Bot = &billing.BotView{ID: "b-" + userID, Status: c.stage}
	}
	ov.StageText = stageTexts[ov.Stage]
	return ov, nil
}

func (f *fakeBilling) Subscribe(_ context.Context, userID string) (string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.call("Subscribe"); err != nil {
		return "", err
	}
	c := f.customer(userID)
	if !c.saved {
		return "", wire.Errorf(wire.CodeInvalidArgument, "set up your assistant before you subscribe")
	}
	if c.sub != nil {
		return "/app", nil // a double click: the first one did it
	}
	if !f.test {
		return "https://checkout.stripe.com/c/pay/cs_test_fake", nil
	}
	end := f.now().Add(30 * 24 * time.Hour)
	c.sub = &billing.SubscriptionView{ID: "s-" + userID, PlanID: c.in.PlanID, Status: "active", Source: "test", PeriodEnd: &end}
	c.stage, c.bot = billing.StagePending, true
	return "/app", nil
}

func (f *fakeBilling) CheckoutReturned(_ context.Context, userID, sessionID string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.call("CheckoutReturned"); err != nil {
		return err
	}
	c := f.customer(userID)
	c.checkouts = append(c.checkouts, sessionID)
	end := f.now().Add(30 * 24 * time.Hour)
	c.sub = &billing.SubscriptionView{ID: "s-" + userID, PlanID: c.in.PlanID, Status: "active", Source: "stripe", PeriodEnd: &end}
	c.stage, c.bot = billing.StagePending, true
	return nil
}

func (f *fakeBilling) Portal(_ context.Context, userID, returnURL string) (string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.call("Portal"); err != nil {
		return "", err
	}
	if c := f.customer(userID); c.sub == nil || c.sub.Source != "stripe" {
		return "", wire.Errorf(wire.CodeInvalidArgument, "there is no Stripe subscription to manage")
	}
	return "https://billing.stripe.com/p/session/test_fake?return=" + returnURL, nil
}

func (f *fakeBilling) Cancel(_ context.Context, userID string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.call("Cancel"); err != nil {
		return err
	}
	c := f.customer(userID)
	if c.sub == nil {
		return wire.Errorf(wire.CodeConflict, "you have no subscription to cancel")
	}
	c.sub.CancelAtPeriodEnd = true
	return nil
}

func (f *fakeBilling) Resume(_ context.Context, userID string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.call("Resume"); err != nil {
		return err
	}
	c := f.customer(userID)
	if c.sub == nil || !c.sub.CancelAtPeriodEnd {
		return wire.Errorf(wire.CodeConflict, "your subscription is not ending")
	}
	c.sub.CancelAtPeriodEnd = false
	return nil
}

func (f *fakeBilling) Restart(_ context.Context, userID string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.call("Restart"); err != nil {
		return err
	}
	c := f.customer(userID)
	if !c.bot {
		return wire.Errorf(wire.CodeConflict, "your assistant is not running yet")
	}
	c.restarts++
	return nil
}

func (f *fakeBilling) DeleteCustomer(ctx context.Context, userID string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.call("DeleteCustomer"); err != nil {
		return err
	}
	delete(f.customers, userID)
	if err := f.st.DeleteUser(ctx, userID); err != nil && !errors.Is(err, store.ErrNotFound) {
		return err
	}
	return nil
}
