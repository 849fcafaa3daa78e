package pmd

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/spf13/cobra"

	"github.com/pocketmolt/pocketmolt/internal/pki"
	"github.com/pocketmolt/pocketmolt/internal/store"
)

func newRotateServerCertCmd(out io.Writer) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "rotate-server-cert",
		Short: "Replace pmd's server certificate and key, and revoke the old certificate",
		Long: `rotate-server-cert makes a new key and server certificate for pmd's listeners and
revokes the old certificate's serial, in one transaction with an audit entry — for a
server key that may have leaked, or to change the names the certificate holds. The
names are pmd.yaml's server-name, or the --server-name flags given, plus loopback, this
machine's hostname and the listeners' specific IPs, as pmd init chooses them.

A running pmd presents the new certificate within a minute, without a restart, and then
tells its agents the revoked serial in their heartbeats; they keep it and refuse any
server that presents the old certificate. It takes no lock on the data dir, so it runs
beside pmd, or with pmd stopped. A running pmd renews its own certificate, for the same
names, when a third of its life is left; that needs no command.`,
		Example: `  pmd rotate-server-cert --data-dir /var/lib/pocketmolt
  pmd rotate-server-cert --data-dir ./pm --server-name pm.example.com --server-name 10.0.0.5`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := loadConfig(cmd, true)
			if err != nil {
				return err
			}
			return RotateServerCert(cmd.Context(), cfg, out)
		},
	}
	commonFlags(cmd.Flags())
	cmd.Flags().StringSlice("server-name", nil, "DNS name or IP for the new certificate (repeatable; default pmd.yaml's server-name)")
	for _, name := range daemonOnlyFlags {
		_ = cmd.Flags().MarkHidden(name)
	}
	return cmd
}

// RotateServerCert replaces the server certificate and key in cfg's database with new ones for
// serverNames(cfg), revokes the old certificate and audits it, in one transaction. It prints
// one line to out.
func RotateServerCert(ctx context.Context, cfg Config, out io.Writer) error {
	if err := cfg.Validate(); err != nil {
		return err
	}
	kr, st, ca, err := openCA(ctx, cfg)
	if err != nil {
		return err
	}
	defer st.Close()
	now := time.Now().UTC()
	names := serverNames(cfg)
	var oldSerial, newSerial string
	err = st.InTx(ctx, func(tx *store.Store) error {
		oldPEM, _, err := getKeyPair(ctx, tx, kr, kpServer)
		if err != nil {
			return err
		}
		olds, err := pki.ParseCertsPEM(oldPEM)
		if err != nil || len(olds) == 0 {
			return errors.New("the server certificate in the database is damaged")
		}
		oldSerial = pki.SerialString(olds[0])
		iss, err := issueServer(ctx, tx, kr, ca, names, now)
		if err != nil {
			return err
		}
		newSerial = pki.SerialString(iss.Cert)
		if _, err := tx.RevokeCert(ctx, oldSerial, now); err != nil && !errors.Is(err, store.ErrNotFound) {
			return err
		}
		_, err = tx.AppendAudit(ctx, store.AuditEntry{Time: now, Actor: "pmd", Action: "cert.rotate-server", Target: newSerial,
			Detail: fmt.Sprintf("server certificate for %v replaces %s, which is revoked; run %s", names, oldSerial, who())})
		return err
	})
	if err != nil {
		return fmt.Errorf("rotate server certificate: %w", err)
	}
	fmt.Fprintf(out, "server certificate %s for %v replaces %s, which is revoked; a running pmd serves the new one within %s\n",
		newSerial, names, oldSerial, serverCertCheck)
	return nil
}
