package openclaw_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/pocketmolt/pocketmolt/internal/openclaw"
)

// checkErr asserts err matches wantErr, is a *ValidationError for field,
// and (for secrets) does not contain the input or any long part of it.
func checkErr(t *testing.T, err error, wantErr bool, field, input string, secret bool) {
	t.Helper()
	if !wantErr {
		if err != nil {
			t.Fatalf("unexpected error: %v", err)
		}
		return
	}
	if err == nil {
		t.Fatal("no error")
	}
	var ve *openclaw.ValidationError
	if !errors.As(err, &ve) {
		t.Fatalf("error %T is not *ValidationError: %v", err, err)
	}
	if ve.Field != field {
		t.Errorf("field = %q, want %q", ve.Field, field)
	}
	if !strings.HasPrefix(err.Error(), "invalid "+field+": ") {
		t.Errorf("message %q does not name the field", err)
	}
	if secret {
		assertNoLeak(t, err.Error(), input)
	}
}

// assertNoLeak fails if msg contains the trimmed secret or any 6-character
// run of it that is not ordinary message text.
func assertNoLeak(t *testing.T, msg, secret string) {
	t.Helper()
	s := strings.TrimSpace(secret)
	if len(s) >= 4 && strings.Contains(msg, s) {
		t.Fatalf("error contains the secret: %q", msg)
	}
	for i := 0; i+6 <= len(s); i++ {
		run := s[i : i+6]
		if strings.Contains(msg, run) && !strings.Contains(benign, run) {
			t.Fatalf("error %q contains %q from the secret", msg, run)
		}
	}
}

// benign is text error messages may share with an input by chance.
const benign = "0123456789 abcdefghijklmnopqrstuvwxyz ABCDEFGHIJKLMNOPQRSTUVWXYZ"

func TestValidateModel(t *testing.T) {
	tests := []struct {
		in      string
		wantErr bool
	}{
		{"anthropic/claude-sonnet-4-6", false},
		{"openai/gpt-5.1", false},
		{"openai/gpt-4o-mini", false},
		{"google/gemini-2.5-pro", false},
		{"openrouter/anthropic/claude-sonnet-4", false},
		{"openrouter/meta-llama/llama-3.3-70b-instruct:free", false},
		{"amazon-bedrock/anthropic.claude-3-5-sonnet-20241022-v2:0", false},
		{"ollama/llama3.2:3b", false},
		{"x/Y", false},
		{"", true},
		{"claude-sonnet-4-6", true},
		{"/claude", true},
		{"anthropic/", true},
		{"Anthropic/claude", true},
		{"-anthropic/claude", true},
		{"anthropic//claude", true},
		{"openrouter/meta-llama/", true},
		{"anthropic/claude sonnet", true},
		{" anthropic/claude", true},
		{"anthropic/claude\n", true},
		{"anthropic/-claude", true},
		{"anthropic/claude;rm -rf", true},
		{"anthropic/${ANTHROPIC_API_KEY}", true},
		{"anthropic/clau\u00e9de", true},
		{"anthropic/" + strings.Repeat("a", 200), true},
		{strings.Repeat("p", 65) + "/m", true},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			err := openclaw.ValidateModel(tt.in)
			checkErr(t, err, tt.wantErr, "model", tt.in, false)
			if err != nil && !strings.Contains(err.Error(), `"<provider>/<model>"`) {
				t.Errorf("error %q does not name the expected form", err)
			}
		})
	}
}

func TestValidateToolsProfile(t *testing.T) {
	for _, p := range append(openclaw.ToolsProfiles(), "") {
		if err := openclaw.ValidateToolsProfile(p); err != nil {
			t.Errorf("%q: %v", p, err)
		}
	}
	for _, p := range []string{"admin", "Full", " full", "none", "messaging,coding"} {
		checkErr(t, openclaw.ValidateToolsProfile(p), true, "tools profile", p, false)
	}
}

func TestValidateTelegramToken(t *testing.T) {
	secret35 := "AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw1" // 35 characters, made up
	if len(secret35) != 35 {
		t.Fatalf("fixture has %d characters", len(secret35))
	}
	tests := []struct {
		name    string
		in      string
		wantErr bool
	}{
		{"typical", "110201543:" + secret35, false},
		{"5 digit id", "12345:" + secret35, false},
		{"12 digit id", "123456789012:" + secret35, false},
		{"dash and underscore", "7123456789:AAF-_" + secret35[5:], false},
		{"empty", "", true},
		{"blank", "   ", true},
		{"no colon", "110201543" + secret35, true},
		{"4 digit id", "1234:" + secret35, true},
		{"13 digit id", "1234567890123:" + secret35, true},
		{"id with letter", "11020a543:" + secret35, true},
		{"empty id", ":" + secret35, true},
		{"secret 34", "110201543:" + secret35[1:], true},
		{"secret 36", "110201543:" + secret35 + "x", true},
		{"secret with dot", "110201543:" + secret35[:34] + ".", true},
		{"secret with colon", "110201543:" + secret35[:34] + ":", true},
		{"leading space", " 110201543:" + secret35, true},
		{"trailing newline", "110201543:" + secret35 + "\n", true},
		{"bot prefix", "bot110201543:" + secret35, true},
		{"env placeholder", "${TELEGRAM_BOT_TOKEN}", true},
		{"non-ascii", "110201543:" + secret35[:34] + "é", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := openclaw.ValidateTelegramToken(tt.in)
			checkErr(t, err, tt.wantErr, "telegram bot token", tt.in, true)
			if err != nil && strings.Contains(err.Error(), secret35[:10]) {
				t.Errorf("error leaks the token: %v", err)
			}
		})
	}
}

func TestValidateAPIKey(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		wantErr bool
	}{
		{"anthropic shape", "sk-ant-api03-Zx9Qw3Er5Ty7Ui9Op1As3Df5Gh7Jk9Lz", false},
		{"openai shape", "sk-proj-Q2w3E4r5T6y7U8i9O0p1A2s3D4f5G6h7", false},
		{"gemini shape", "AIzaSyQ2w3E4r5T6y7U8i9O0p1A2s3D4f5G6h", false},
		{"surrounding whitespace ignored", "  sk-Q2w3E4r5T6y7U8i9\n", false},
		{"min length", "abcdefgh", false},
		{"max length", strings.Repeat("k", 512), false},
		{"symbols", "k3y!#$%&*+=?@^_~|", false},
		{"empty", "", true},
		{"blank", " \t\n", true},
		{"too short", "sk-abc1", true},
		{"too long", strings.Repeat("k", 513), true},
		{"space inside", "sk-Q2w3E4r5 T6y7U8i9", true},
		{"newline inside", "sk-Q2w3E4r5\nT6y7U8i9", true},
		{"tab inside", "sk-Q2w3E4r5\tT6y7U8i9", true},
		{"nul inside", "sk-Q2w3E4r5\x00T6y7U8i9", true},
		{"del inside", "sk-Q2w3E4r5\x7fT6y7U8i9", true},
		{"non-ascii", "sk-Q2w3E4r5éT6y7U8i9", true},
		{"nbsp inside", "sk-Q2w3E4r5\u00a0T6y7U8i9", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			checkErr(t, openclaw.ValidateAPIKey(tt.in), tt.wantErr, "api key", tt.in, true)
		})
	}
}

func TestProvider(t *testing.T) {
	tests := []struct {
		model   string
		want    string
		wantErr bool
	}{
		{"anthropic/claude-sonnet-4-6", "anthropic", false},
		{"openai/gpt-5.1", "openai", false},
		{"openrouter/anthropic/claude-sonnet-4", "", true},
		{"google/gemini-2.5-pro", "", true},
		{"unknownco/model-1", "", true},
		{"anthropic", "", true},
		{"", "", true},
		{"ANTHROPIC/claude", "", true},
	}
	for _, tt := range tests {
		t.Run(tt.model, func(t *testing.T) {
			got, err := openclaw.Provider(tt.model)
			checkErr(t, err, tt.wantErr, "model", tt.model, false)
			if got != tt.want {
				t.Errorf("Provider(%q) = %q, want %q", tt.model, got, tt.want)
			}
		})
	}
	// An unknown provider's error lists every supported one.
	_, err := openclaw.Provider("unknownco/model-1")
	for _, p := range openclaw.Providers() {
		if !strings.Contains(err.Error(), p) {
			t.Errorf("error %q does not list %s", err, p)
		}
	}
}
