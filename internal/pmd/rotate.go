package pmd

import (
	"context"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/pocketmolt/pocketmolt/internal/billing"
	"github.com/pocketmolt/pocketmolt/internal/bots"
	"github.com/pocketmolt/pocketmolt/internal/secret"
	"github.com/pocketmolt/pocketmolt/internal/store"
)

func newRotateKeyCmd(out io.Writer) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "rotate-key",
		Short: "Replace the master key and re-seal every secret in the database under the new one",
		Long: `rotate-key makes a new master key, re-seals every value the database holds sealed
(the CA and server keys, bot secrets) under it in one transaction, and then leaves only
the new key in the master key file. It prints the old and new key ids and how many values
it re-sealed, and records the rotation in the audit log.

Stop pmd first: rotate-key takes the data dir's lock, as serve does. With PostgreSQL, stop
every pmd that uses the database, including those with other data dirs.

It is safe to interrupt at any point: until its last step the key file holds the old keys
and the new one, which pmd starts with, and running rotate-key again finishes the job
under a fresh key. A key given in PMD_MASTER_KEY cannot be rotated; put it in the key
file and unset the variable first.`,
		Example: "  pmd rotate-key --data-dir ./pm",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := loadConfig(cmd, true)
			if err != nil {
				return err
			}
			return RotateKey(cmd.Context(), cfg, out)
		},
	}
	commonFlags(cmd.Flags())
	// Read like serve's, so that one pmd.yaml and one set of PMD_* variables serve both, but
	// beside the point here.
	for _, name := range append([]string{"admin-addr"}, daemonOnlyFlags...) {
		_ = cmd.Flags().MarkHidden(name)
	}
	return cmd
}

// RotateKey replaces the master key in cfg.KeyFile() and re-seals every sealed value in the
// database under the new key:
//
//  1. read the key file, refusing a key given in PMD_MASTER_KEY;
//  2. write it back with a new key added (atomically: temporary file, fsync, rename);
//  3. in one transaction, open each sealed value and seal it again under the new key with
//     the same associated data, and append an audit entry;
//  4. write the file back with only the new key.
//
// Between any two steps the file opens every value in the database, so pmd starts and
// RotateKey, run again, converges. A value that does not open aborts step 3 with an error
// naming its row, and the file is put back as it was. It holds the data dir's lock
// throughout and prints one line to out.
func RotateKey(ctx context.Context, cfg Config, out io.Writer) error {
	if err := cfg.Validate(); err != nil {
		return err
	}
	if err := checkDataDir(cfg.DataDir); err != nil {
		return err
	}
	path := cfg.KeyFile()
	if os.Getenv("PMD_MASTER_KEY") != "" {
		return fmt.Errorf("rotate-key rewrites the master key file, but the key comes from PMD_MASTER_KEY: put its lines in %s (mode 0600), unset PMD_MASTER_KEY and run rotate-key again", path)
	}
	lock, err := lockDataDir(cfg.DataDir)
	if err != nil {
		return err
	}
	defer lock.release()

	r, err := newRotation(path)
	if err != nil {
		return err
	}
	// The database is opened before the file is touched, so that an unreachable one changes
	// nothing.
	st, err := store.Open(ctx, cfg.DatabaseURL())
	if err != nil {
		return err
	}
	defer st.Close()

	if err := r.addKey(); err != nil {
		return fmt.Errorf("rotate master key: %w", err)
	}
	n, maybeCommitted, err := r.reseal(ctx, st, time.Now())
	if err != nil && maybeCommitted {
		return fmt.Errorf("rotate master key: %w; the database may hold values sealed under the new key %s, so %s keeps the old keys and the new one (pmd starts with it): run rotate-key again", err, r.next.ID, path)
	}
	if err != nil {
		if uerr := r.undo(); uerr != nil {
			return fmt.Errorf("rotate master key: %w; the database is unchanged, but putting back %s failed (%v): it holds the old keys and a new one, which pmd starts with", err, path, uerr)
		}
		return fmt.Errorf("rotate master key: %w; nothing was changed", err)
	}
	if err := r.dropOld(); err != nil {
		return fmt.Errorf("rotate master key: %d values re-sealed under %s, but dropping the old keys failed: %w; %s holds the old keys and the new one, which pmd starts with: run rotate-key again", n, r.next.ID, err, path)
	}
	fmt.Fprintf(out, "rotated master key %s → %s: re-sealed %d values\n", r.oldIDs(), r.next.ID, n)
	return nil
}

// rotation is one run of RotateKey: the key file as it was and the key that replaces it.
type rotation struct {
	path string
	orig []byte // the file's bytes before the rotation, to put back if it fails
	old  []secret.Key
	next secret.Key
	ring *secret.Keyring // the old keys and next; next seals
}

// newRotation reads the key file at path and makes a new key with an id none of its keys has.
func newRotation(path string) (*rotation, error) {
	orig, err := secret.ReadKeyFile(path)
	if err != nil {
		return nil, err
	}
	old, err := secret.ParseKeys(string(orig))
	if err != nil {
		return nil, fmt.Errorf("master key %s is corrupt: %w", path, err)
	}
	next, err := secret.NewKey(secret.NextID(old))
	if err != nil {
		return nil, err
	}
	ring, err := secret.NewKeyring(append(append([]secret.Key{}, old...), next)...)
	if err != nil {
		return nil, err
	}
	return &rotation{path: path, orig: orig, old: old, next: next, ring: ring}, nil
}

func (r *rotation) oldIDs() string {
	ids := make([]string, len(r.old))
	for i, k := range r.old {
		ids[i] = k.ID
	}
	return strings.Join(ids, ", ")
}

// addKey writes the key file with the old keys and the new one, the new one last. From here
// on the file opens whatever the database holds, whether or not reseal has run.
func (r *rotation) addKey() error {
	return secret.WriteKeyFile(r.path, secret.FormatKeys(append(append([]secret.Key{}, r.old...), r.next)...))
}

// reseal re-seals every sealed value in the database under the new key, in one transaction
// that also appends the audit entry, and returns how many it re-sealed. A value that does
// not open, or a row that changes meanwhile, aborts the transaction with an error naming the
// row. maybeCommitted reports, with an error, that the transaction got as far as its commit:
// a failed commit (a lost connection, say) leaves unknown whether it took effect.
func (r *rotation) reseal(ctx context.Context, st *store.Store, now time.Time) (n int, maybeCommitted bool, err error) {
	committing := false
	err = st.InTx(ctx, func(tx *store.Store) error {
		vs, err := tx.ListSealed(ctx)
		if err != nil {
			return err
		}
		for _, v := range vs {
			ad, err := sealedAD(v)
			if err != nil {
				return err
			}
			pt, err := r.ring.Open(v.Value, ad)
			if err != nil {
				return fmt.Errorf("re-seal %s: %w", v, err)
			}
			sealed, err := r.ring.Seal(pt, ad)
			clear(pt)
			if err != nil {
				return fmt.Errorf("re-seal %s: %w", v, err)
			}
			if err := tx.ReplaceSealed(ctx, v, sealed); err != nil {
				return err
			}
		}
		n = len(vs)
		_, err = tx.AppendAudit(ctx, store.AuditEntry{
			Time: now.UTC(), Actor: "pmd", Action: "pmd.rotate-key", Target: r.path,
			Detail: fmt.Sprintf("master key %s → %s: re-sealed %d values", r.oldIDs(), r.next.ID, n),
		})
		if err != nil {
			return err
		}
		committing = true
		return nil
	})
	if err != nil {
		return 0, committing, err
	}
	return n, false, nil
}

// undo puts the key file back as it was. Call it only when reseal's transaction surely
// rolled back: the file would no longer open values sealed under the new key.
func (r *rotation) undo() error { return secret.WriteKeyFile(r.path, r.orig) }

// dropOld writes the key file with only the new key. Call it only after reseal committed.
func (r *rotation) dropOld() error { return secret.WriteKeyFile(r.path, secret.FormatKeys(r.next)) }

// sealedAD is the associated data a sealed value was sealed with, which binds it to its row
// and column. It must match what sealed the value: keyAD for key pairs, and the bots
// package's secretsAD for bot secrets. A sealed column it does not know aborts rotation
// rather than leaving the column under a key about to be dropped.
func sealedAD(v store.SealedValue) (string, error) {
	switch {
	case v.Table == "key_pairs" && v.Column == "key_sealed":
		return keyAD(v.Row), nil
	case v.Table == "bots" && v.Column == "secrets":
		return bots.SecretsAD(v.Row), nil
	case v.Table == "assistants" && v.Column == "secrets":
		return billing.AssistantSecretsAD(v.Row), nil
	}
	return "", fmt.Errorf("re-seal %s: rotate-key does not know this column's associated data", v)
}
