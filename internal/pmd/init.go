package pmd

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/pocketmolt/pocketmolt/internal/admins"
	"github.com/pocketmolt/pocketmolt/internal/ctlconfig"
	"github.com/pocketmolt/pocketmolt/internal/fleet"
	"github.com/pocketmolt/pocketmolt/internal/pki"
	"github.com/pocketmolt/pocketmolt/internal/secret"
	"github.com/pocketmolt/pocketmolt/internal/store"
	"github.com/pocketmolt/pocketmolt/internal/wire"
)

// FallbackAdminName is the name in the first admin certificate when neither --admin nor a
// usable $USER gives one.
const FallbackAdminName = "admin"

// RootKeyFile is where `pmd init --offline-root` writes the root CA's key, for the operator
// to move offline.
const RootKeyFile = "root-ca.key"

// DefaultAdminName is the first admin's name for a user name (from $USER): the user name
// when it is a valid admin name, else FallbackAdminName.
func DefaultAdminName(user string) string {
	if wire.ValidName(user) {
		return user
	}
	return FallbackAdminName
}

// Initialised reports whether dir already holds a pmd installation, and which file says so.
func Initialised(dir string) (bool, string) {
	for _, f := range []string{ConfigFile, MasterKeyFile, DatabaseFile} {
		if _, err := os.Stat(filepath.Join(dir, f)); err == nil {
			return true, f
		}
	}
	return false, ""
}

// Init creates a pmd installation in cfg.DataDir: master key, database, root and intermediate
// CA, server certificate, a first admin certificate (for cfg.Admin, default from $USER) in
// pmctl.yaml, and pmd.yaml recording the addresses. With cfg.OfflineRoot the root CA's key is
// written to RootKeyFile for the operator to keep offline and is not stored in the database.
// It refuses an initialised data dir unless cfg.Force, so a CA is never replaced by accident,
// and a data dir another pmd is using; on any failure it removes what it made. Progress goes
// to out.
func Init(ctx context.Context, cfg Config, out io.Writer) (err error) {
	if err := cfg.Validate(); err != nil {
		return err
	}
	dir, err := filepath.Abs(cfg.DataDir)
	if err != nil {
		return err
	}
	cfg.DataDir = dir
	_, statErr := os.Stat(dir)
	madeDir := os.IsNotExist(statErr)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("data dir: %w", err)
	}
	made := []string{}
	defer func() {
		if err == nil {
			return
		}
		if madeDir {
			os.RemoveAll(dir)
			return
		}
		for _, f := range made {
			os.Remove(f)
		}
	}()
	lock, err := lockDataDir(dir)
	if err != nil {
		return err
	}
	defer lock.release()
	if ok, file := Initialised(dir); ok && !cfg.Force {
		return fmt.Errorf("data dir %s is already initialised (%s exists); refusing to replace its CA — use --force to start over, after which every host must enroll again", dir, file)
	}
	if cfg.Force {
		fmt.Fprintf(out, "warning: --force: replacing the installation in %s; every host must enroll again\n", dir)
		for _, f := range []string{ConfigFile, CtlConfigFile, MasterKeyFile, DatabaseFile, DatabaseFile + "-wal", DatabaseFile + "-shm", RootKeyFile} {
			if err := os.Remove(filepath.Join(dir, f)); err != nil && !os.IsNotExist(err) {
				return fmt.Errorf("--force: %w", err)
			}
		}
	}

	// Master key.
	var kr *secret.Keyring
	if env := os.Getenv("PMD_MASTER_KEY"); env != "" {
		if kr, err = secret.LoadKeyring("", env); err != nil {
			return err
		}
		fmt.Fprintln(out, "master key: from PMD_MASTER_KEY")
	} else {
		k, err := secret.NewKey("k1")
		if err != nil {
			return err
		}
		path := cfg.KeyFile()
		if err := writeExclusive(path, secret.FormatKeys(k), 0o600); err != nil {
			return fmt.Errorf("master key: %w", err)
		}
		made = append(made, path)
		if kr, err = secret.NewKeyring(k); err != nil {
			return err
		}
		fmt.Fprintf(out, "master key: %s\n", path)
	}

	// Database.
	if cfg.Database == "" {
		made = append(made, filepath.Join(dir, DatabaseFile), filepath.Join(dir, DatabaseFile+"-wal"), filepath.Join(dir, DatabaseFile+"-shm"))
	}
	st, err := store.Open(ctx, cfg.DatabaseURL())
	if err != nil {
		return err
	}
	defer st.Close()
	if _, err := st.GetKeyPair(ctx, kpRoot); err == nil && !cfg.Force {
		return fmt.Errorf("database %s already holds a CA; refusing to replace it — use --force to start over", redactURL(cfg.DatabaseURL()))
	}

	now := time.Now()
	ca, err := pki.NewCA("PocketMolt", now)
	if err != nil {
		return err
	}
	adminName := cfg.Admin
	if adminName == "" {
		adminName = DefaultAdminName(os.Getenv("USER"))
	}
	rootKey, err := pki.MarshalKey(ca.RootKey)
	if err != nil {
		return err
	}
	if cfg.OfflineRoot {
		path := filepath.Join(dir, RootKeyFile)
		if err := writeExclusive(path, rootKey, 0o600); err != nil {
			return fmt.Errorf("root CA key: %w", err)
		}
		made = append(made, path)
	}
	names := serverNames(cfg)
	var admin wire.AdminBundle
	err = st.InTx(ctx, func(tx *store.Store) error {
		intKey, err := pki.MarshalKey(ca.IntermediateKey)
		if err != nil {
			return err
		}
		if cfg.OfflineRoot {
			// The root's certificate only: its key is in RootKeyFile, for the operator.
			err = tx.PutKeyPair(ctx, store.KeyPair{Name: kpRoot, CertPEM: ca.RootPEM()})
		} else {
			err = putKeyPair(ctx, tx, kr, kpRoot, ca.RootPEM(), rootKey)
		}
		if err != nil {
			return err
		}
		if err := putKeyPair(ctx, tx, kr, kpIntermediate, ca.IntermediatePEM(), intKey); err != nil {
			return err
		}
		for _, c := range []store.Certificate{
			fleet.CertRecord(ca.Root, wire.CertRoot, ""),
			fleet.CertRecord(ca.Intermediate, wire.CertIntermediate, ""),
		} {
			if err := tx.InsertCert(ctx, c); err != nil {
				return err
			}
		}
		if _, err := issueServer(ctx, tx, kr, ca, names, now); err != nil {
			return err
		}
		detail := "root " + pki.Fingerprint(ca.Root)
		if cfg.OfflineRoot {
			detail += ", root key kept offline"
		}
		if _, err := tx.AppendAudit(ctx, store.AuditEntry{Time: now.UTC(), Actor: "pmd", Action: "pmd.init", Target: dir, Detail: detail}); err != nil {
			return err
		}
		admin, err = admins.Issue(ctx, tx, ca, adminName, adminCertTTL, now.UTC(), "pmd", "the first admin, made by pmd init")
		return err
	})
	clear(rootKey)
	if err != nil {
		return fmt.Errorf("initialise database: %w", err)
	}
	fmt.Fprintf(out, "database: %s\nroot CA fingerprint: %s\nserver certificate names: %v\nfirst admin: %s\n", redactURL(cfg.DatabaseURL()), pki.Fingerprint(ca.Root), names, adminName)
	if cfg.OfflineRoot {
		fmt.Fprintf(out, "root CA key: %s (0600) — not in the database: move it to offline storage now; pmd runs without it\n", filepath.Join(dir, RootKeyFile))
	}

	// pmctl's config, for the admin listener.
	ctlPath := filepath.Join(dir, CtlConfigFile)
	made = append(made, ctlPath)
	if err := ctlconfig.Write(ctlPath, &ctlconfig.Config{
		CurrentContext: "default",
		Contexts: []ctlconfig.Context{{
			Name: "default", Server: dialAddr(cfg.AdminAddr),
			CAData: admin.RootCA, CertData: admin.Cert, KeyData: admin.Key,
		}},
	}); err != nil {
		return fmt.Errorf("write %s: %w", ctlPath, err)
	}
	fmt.Fprintf(out, "pmctl config: %s\n", ctlPath)

	// pmd.yaml last: its presence marks a complete installation.
	b, err := yaml.Marshal(cfg)
	if err != nil {
		return err
	}
	cfgPath := filepath.Join(dir, ConfigFile)
	made = append(made, cfgPath)
	header := "# pmd configuration written by `pmd init`; flags and PMD_* variables override it.\n"
	if err := writeExclusive(cfgPath, append([]byte(header), b...), 0o600); err != nil {
		return fmt.Errorf("write %s: %w", cfgPath, err)
	}
	fmt.Fprintf(out, "config: %s\n", cfgPath)
	return nil
}

// serverNames are the names and addresses pmd's certificate is valid for: the ones the
// operator gave, loopback, this machine's name, and the listeners' specific IPs.
func serverNames(cfg Config) []string {
	seen := map[string]bool{}
	var names []string
	add := func(n string) {
		if n != "" && !seen[n] {
			seen[n] = true
			names = append(names, n)
		}
	}
	for _, n := range cfg.ServerName {
		add(n)
	}
	add("localhost")
	add("127.0.0.1")
	add("::1")
	if h, err := os.Hostname(); err == nil && wire.ValidName(h) {
		add(h)
	}
	for _, a := range []string{cfg.AgentAddr, cfg.AdminAddr, cfg.PublicAddr} {
		if h, _, err := net.SplitHostPort(a); err == nil {
			if ip := net.ParseIP(h); ip != nil && !ip.IsUnspecified() {
				add(ip.String())
			}
		}
	}
	return names
}

// dialAddr turns a listen address into one a local client can dial.
func dialAddr(addr string) string {
	h, p, err := net.SplitHostPort(addr)
	if err != nil {
		return addr
	}
	if ip := net.ParseIP(h); h == "" || ip != nil && ip.IsUnspecified() {
		h = "127.0.0.1"
	}
	return net.JoinHostPort(h, p)
}

func writeExclusive(path string, data []byte, mode os.FileMode) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, mode)
	if errors.Is(err, os.ErrExist) {
		return fmt.Errorf("%s exists", path)
	}
	if err != nil {
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
