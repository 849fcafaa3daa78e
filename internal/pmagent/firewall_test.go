package pmagent

import (
	"io"
	"slices"
	"testing"
)

func TestFirewallSettings(t *testing.T) {
	tests := []struct {
		name    string
		env     map[string]string
		args    []string
		enabled bool
		allow   []string
	}{
		{name: "defaults", enabled: true},
		{
			name:    "environment, comma-separated",
			env:     map[string]string{"PMAGENT_BOT_FIREWALL": "false", "PMAGENT_BOT_EGRESS_ALLOW": "10.0.0.5:5432/tcp,192.168.1.0/24"},
			enabled: false, allow: []string{"10.0.0.5:5432/tcp", "192.168.1.0/24"},
		},
		{
			name:    "flags, repeated",
			args:    []string{"--bot-egress-allow", "10.0.0.5:5432/tcp", "--bot-egress-allow", "[fd00::5]:443/tcp"},
			enabled: true, allow: []string{"10.0.0.5:5432/tcp", "[fd00::5]:443/tcp"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			clearEnv(t)
			for k, v := range tt.env {
				t.Setenv(k, v)
			}
			cfg, err := loadWith(t, newRunCmd(io.Discard), append([]string{"--config", "/dev/null"}, tt.args...)...)
			if err != nil {
				t.Fatal(err)
			}
			if cfg.BotFirewall != tt.enabled || !slices.Equal(cfg.BotEgressAllow, tt.allow) {
				t.Fatalf("bot-firewall %v, bot-egress-allow %q; want %v %q", cfg.BotFirewall, cfg.BotEgressAllow, tt.enabled, tt.allow)
			}
		})
	}
}
