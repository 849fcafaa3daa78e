package pmd

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/user"
	"time"

	"github.com/spf13/cobra"

	"github.com/pocketmolt/pocketmolt/internal/admins"
	"github.com/pocketmolt/pocketmolt/internal/config"
	"github.com/pocketmolt/pocketmolt/internal/ctlconfig"
	"github.com/pocketmolt/pocketmolt/internal/store"
	"github.com/pocketmolt/pocketmolt/internal/wire"
)

// daemonOnlyFlags are common flags that only the daemon itself reads; the one-shot commands
// on a data dir (rotate-key, admin-cert, rotate-server-cert) accept them, so that one pmd.yaml
// and one set of PMD_* variables serve every command, but hide them.
var daemonOnlyFlags = []string{"public-addr", "agent-addr", "heartbeat-interval", "agent-cert-ttl",
	"token-ttl", "log-level", "bot-image", "bot-start-timeout", "metrics-addr", "agent-cert-overlap",
	"enroll-rate", "enroll-rate-per-address", "bot-disk-limit"}

func newAdminCertCmd(out io.Writer) *cobra.Command {
	var (
		ttl     time.Duration
		outPath string
	)
	cmd := &cobra.Command{
		Use:   "admin-cert NAME",
		Short: "Issue an admin certificate on the pmd host, without the admin API (break-glass)",
		Long: `admin-cert issues an admin certificate for the operator NAME straight from the data
dir — the database and the master key — with no running admin API, and prints a pmctl
config with one context for it (or writes it, mode 0600, to --out). It is the way back
in when no admin certificate works any more: all lost, expired or revoked.

It works whether pmd is running or stopped: it takes no lock on the data dir and writes
one short transaction (SQLite in WAL mode and PostgreSQL both allow that beside a running
pmd). The audit log records it as done by pmd on this host, naming the OS user who ran
it. Anyone who can run it can read the master key, so it gives no one more than they
already had.`,
		Example: `  sudo -u pocketmolt pmd admin-cert alice --data-dir /var/lib/pocketmolt --out alice.yaml
  pmctl --config alice.yaml admins list`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			cfg, err := loadConfig(cmd, true)
			if err != nil {
				return err
			}
			return AdminCert(cmd.Context(), cfg, args[0], ttl, outPath, out)
		},
	}
	commonFlags(cmd.Flags())
	cmd.Flags().DurationVar(&ttl, "ttl", admins.DefaultTTL, "lifetime of the certificate")
	cmd.Flags().StringVar(&outPath, "out", "", "write the pmctl config to this new file (mode 0600) instead of stdout")
	config.NotSettings(cmd.Flags(), "ttl", "out")
	for _, name := range daemonOnlyFlags {
		_ = cmd.Flags().MarkHidden(name)
	}
	return cmd
}

// AdminCert issues an admin certificate for name from cfg's data dir with no running API, as
// pmd on this host (audited with the OS user's name), and writes a pmctl config holding it to
// outPath (a new file, 0600) or, when outPath is "", to out.
func AdminCert(ctx context.Context, cfg Config, name string, ttl time.Duration, outPath string, out io.Writer) error {
	if err := cfg.Validate(); err != nil {
		return err
	}
	if !wire.ValidName(name) {
		return fmt.Errorf("admin name %q: %s", name, wire.NameRule)
	}
	if outPath != "" {
		if _, err := os.Lstat(outPath); err == nil {
			return fmt.Errorf("--out %s already exists; choose another file", outPath)
		}
	}
	_, st, ca, err := openCA(ctx, cfg)
	if err != nil {
		return err
	}
	defer st.Close()
	var b wire.AdminBundle
	err = st.InTx(ctx, func(tx *store.Store) error {
		b, err = admins.Issue(ctx, tx, ca, name, ttl, time.Now().UTC(), "pmd", "break-glass: pmd admin-cert run "+who())
		return err
	})
	if err != nil {
		return fmt.Errorf("issue admin certificate for %s: %w", name, err)
	}
	c := &ctlconfig.Config{
		CurrentContext: "default",
		Contexts: []ctlconfig.Context{{
			Name: "default", Server: dialAddr(cfg.AdminAddr), CAData: b.RootCA, CertData: b.Cert, KeyData: b.Key,
		}},
	}
	if outPath != "" {
		if err := ctlconfig.WriteNew(outPath, c); err != nil {
			return fmt.Errorf("certificate %s for %s was issued, but %w; revoke it (pmctl certs revoke %s) and run admin-cert again", b.Serial, name, err, b.Serial)
		}
		fmt.Fprintf(out, "admin certificate %s for %s, valid until %s, in %s\n", b.Serial, name, b.NotAfter.Format(time.RFC3339), outPath)
		return nil
	}
	y, err := ctlconfig.Encode(c)
	if err != nil {
		return err
	}
	_, err = out.Write(y)
	return err
}

// who names the OS user and host running a command, for the audit log.
func who() string {
	name := "unknown user"
	if u, err := user.Current(); err == nil {
		name = u.Username
	}
	host, err := os.Hostname()
	if err != nil {
		host = "unknown host"
	}
	return "by " + name + " on " + host
}
