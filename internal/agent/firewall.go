package agent

import (
	"context"
	"errors"
	"time"
)

// Firewall is what the bot manager needs from the host's firewall: the rules that keep bots
// from reaching the host, its networks and each other, put in place (or found in place).
// internal/firewall implements it; pmagent run and pmd dev set it.
type Firewall interface {
	// Ensure installs the rules or restores what went missing; an error means they are not
	// in place.
	Ensure(ctx context.Context) error
}

// DefaultFirewallEvery is how often the firewall rules are checked (and restored when a
// reboot, an Engine restart or someone's flush took them). A check costs an iptables-save
// per address family, so it is not made on every convergence pass.
const DefaultFirewallEvery = 10 * time.Second

// firewallFix is what the log line says to do when the rules cannot be installed.
const firewallFix = "run pmagent with CAP_NET_ADMIN and CAP_NET_RAW (or as root) and the iptables commands the Docker Engine uses in its PATH; or set bot-firewall: false, which leaves bots able to reach this host and its networks"

// SetFirewall makes the manager put fw's rules in place before it creates or starts any
// bot container, check them every every (DefaultFirewallEvery when 0), and create or start
// none while they cannot be installed. Call it before Run.
func (m *Bots) SetFirewall(fw Firewall, every time.Duration) {
	if every <= 0 {
		every = DefaultFirewallEvery
	}
	m.mu.Lock()
	m.fw, m.fwEvery = fw, every
	m.fwErr = errors.New("bot firewall rules not installed yet")
	m.mu.Unlock()
}

// checkFirewall runs the firewall's Ensure when a check is due, and records the outcome for
// firewallErr. It logs once when the rules cannot be installed and once when they can again.
func (m *Bots) checkFirewall(ctx context.Context) {
	m.mu.Lock()
	fw, due := m.fw, m.fw != nil && (m.fwAt.IsZero() || m.now().Sub(m.fwAt) >= m.fwEvery)
	m.mu.Unlock()
	if !due {
		return
	}
	err := fw.Ensure(ctx)
	if ctx.Err() != nil {
		return
	}
	m.mu.Lock()
	m.fwAt = m.now()
	if err != nil {
		m.fwErr = errors.New("bot firewall not in place, so no bot container is created or started: " + err.Error())
	} else {
		m.fwErr = nil
	}
	failing := m.fwFailing
	m.fwFailing = err != nil
	m.mu.Unlock()
	switch {
	case err != nil && !failing:
		m.log.Error("bot firewall rules cannot be installed; no bot container will be created or started", "error", err.Error(), "fix", firewallFix)
	case err == nil && failing:
		m.log.Info("bot firewall rules in place; bot containers may be created and started")
	}
}

// firewallErr is why bot containers may not be created or started now, or nil.
func (m *Bots) firewallErr() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.fwErr
}
