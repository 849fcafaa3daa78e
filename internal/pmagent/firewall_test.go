package pmagent

import (
	"fmt"
	"io"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/pocketmolt/pocketmolt/internal/firewall"
	"github.com/pocketmolt/pocketmolt/internal/runtime"
	"github.com/pocketmolt/pocketmolt/internal/runtime/docker"
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

// The agent's firewall opens the model endpoint to each bot at its own bridge gateway (every
// gateway is in the bot subnet pool), in the input chain only, and keeps the operator's
// allowances.
func TestBotFirewallOpensTheModelEndpoint(t *testing.T) {
	allow, err := firewall.ParseRules([]string{"192.168.1.5:5432/tcp"})
	if err != nil {
		t.Fatal(err)
	}
	for _, pool := range []netip.Prefix{docker.DefaultSubnetPool, netip.MustParsePrefix("10.50.0.0/20")} {
		t.Run(pool.String(), func(t *testing.T) {
			fw, err := botFirewall("host-1", allow, pool, nil)
			if err != nil {
				t.Fatal(err)
			}
			in, fwd, _ := fw.Chains()
			rules := fw.Rules()
			endpoint := fmt.Sprintf("-A %s -d %s -p tcp -m tcp --dport %d -m addrtype --dst-type LOCAL --limit-iface-in -j ACCEPT", in, pool, runtime.ModelPort)
			lines := strings.Split(rules["ipv4"], "\n")
			if !slices.Contains(lines, endpoint) {
				t.Errorf("no %q in\n%s", endpoint, rules["ipv4"])
			}
			if !slices.Contains(lines, "-A "+in+" -d 192.168.1.5/32 -p tcp -m tcp --dport 5432 -j ACCEPT") {
				t.Errorf("the operator's allowance is gone:\n%s", rules["ipv4"])
			}
			port := "--dport " + strconv.Itoa(runtime.ModelPort)
			for _, l := range lines {
				if strings.HasPrefix(l, "-A "+fwd+" ") && strings.Contains(l, port) {
					t.Errorf("the forward chain opens the model port: %q", l)
				}
			}
			if strings.Contains(rules["ipv6"], port) {
				t.Errorf("an IPv6 rule for the model port:\n%s", rules["ipv6"])
			}
		})
	}
}
