package agent

import (
	"bufio"
	"bytes"
	"crypto"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"go.step.sm/crypto/keyutil"

	"github.com/pocketmolt/pocketmolt/internal/pki"
)

// pair is a host key and a certificate for it, as renewal hands them to saveCertificate.
type pair struct {
	cert, key []byte
	serial    string
}

// newPairs signs n agent certificates for fresh keys, as pmd would for renewals.
func newPairs(t testing.TB, n int) []pair {
	t.Helper()
	now := time.Now()
	ca, err := pki.NewCA("Test", now)
	if err != nil {
		t.Fatal(err)
	}
	var out []pair
	for range n {
		keyPEM, csrPEM, err := newKeyAndCSR("pmagent")
		if err != nil {
			t.Fatal(err)
		}
		iss, err := ca.SignAgent(csrPEM, "host-1", time.Hour, now)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, pair{cert: iss.CertPEM, key: keyPEM, serial: pki.SerialString(iss.Cert)})
	}
	return out
}

// loadedSerial loads the state dir's certificate and key as a connection would, checks that
// they belong together, and returns the certificate's serial.
func loadedSerial(st *State) (string, error) {
	c, leaf, err := st.Certificate()
	if err != nil {
		return "", err
	}
	signer, ok := c.PrivateKey.(crypto.Signer)
	if !ok {
		return "", errors.New("loaded key is not a signer")
	}
	if !keyutil.Equal(signer.Public(), leaf.PublicKey) {
		return "", errors.New("loaded key does not match the loaded certificate")
	}
	return pki.SerialString(leaf), nil
}

// mountTmpfs mounts a tmpfs of size bytes on a new directory and unmounts it when the test
// ends. It needs root; the test is skipped without it.
func mountTmpfs(t *testing.T, size int) string {
	t.Helper()
	if os.Geteuid() != 0 {
		if os.Getenv("CI") == "true" {
			t.Fatal("this test mounts a tmpfs and needs root; CI runs as root")
		}
		t.Skip("mounting a tmpfs needs root")
	}
	dir := filepath.Join(t.TempDir(), "tmpfs")
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Mount("tmpfs", dir, "tmpfs", syscall.MS_NOSUID|syscall.MS_NODEV, fmt.Sprintf("size=%d,mode=0700", size)); err != nil {
		t.Fatalf("mount tmpfs on %s: %v", dir, err)
	}
	t.Cleanup(func() {
		if err := syscall.Unmount(dir, 0); err != nil {
			// Still busy: detach it so nothing is left mounted.
			if err := syscall.Unmount(dir, syscall.MNT_DETACH); err != nil {
				t.Errorf("unmount %s: %v", dir, err)
			}
		}
	})
	return dir
}

// fill writes a file in dir until the file system is full, leaving about leave bytes free
// (whole pages: a tmpfs hands out space by the page).
func fill(t *testing.T, dir string, leave int) {
	t.Helper()
	var sfs syscall.Statfs_t
	if err := syscall.Statfs(dir, &sfs); err != nil {
		t.Fatal(err)
	}
	page := int(sfs.Bsize)
	f, err := os.Create(filepath.Join(dir, "filler"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	buf := bytes.Repeat([]byte{'x'}, page)
	for {
		if _, err := f.Write(buf); err != nil {
			if !errors.Is(err, syscall.ENOSPC) {
				t.Fatal(err)
			}
			break
		}
	}
	if leave > 0 {
		fi, err := f.Stat()
		if err != nil {
			t.Fatal(err)
		}
		n := (leave + page - 1) / page * page
		if err := f.Truncate(fi.Size()/int64(page)*int64(page) - int64(n)); err != nil {
			t.Fatal(err)
		}
	}
}

// A renewal saved on a full disk fails and changes nothing: the host keeps the pair it had,
// whole. Before the fix a failed write went unnoticed and an empty certificate or key was
// renamed into place, so the host could not connect again until it was enrolled anew.
func TestSaveCertificateOnAFullDisk(t *testing.T) {
	pairs := newPairs(t, 2)
	for _, tt := range []struct {
		name  string
		leave int // bytes left free before the save
	}{
		{"no room at all", 0},
		{"room for one small file", 1},
		{"room for some", 3 << 10},
	} {
		t.Run(tt.name, func(t *testing.T) {
			dir := mountTmpfs(t, 256<<10)
			st := &State{Dir: dir}
			if err := st.saveCertificate(pairs[0].cert, pairs[0].key); err != nil {
				t.Fatalf("first save: %v", err)
			}
			fill(t, dir, tt.leave)

			err := st.saveCertificate(pairs[1].cert, pairs[1].key)
			got, lerr := loadedSerial(st)
			if lerr != nil {
				t.Fatalf("after a save on a full disk (save error: %v) the state does not load: %v", err, lerr)
			}
			switch {
			case err != nil && got != pairs[0].serial:
				t.Fatalf("the save failed (%v) but the state holds %s, not the old %s", err, got, pairs[0].serial)
			case err == nil && got != pairs[1].serial:
				t.Fatalf("the save succeeded but the state holds %s, not the new %s", got, pairs[1].serial)
			}
			if tt.leave == 0 && err == nil {
				t.Fatal("a save with no room at all reported success")
			}
			if err != nil && !errors.Is(err, syscall.ENOSPC) {
				t.Errorf("save error %v does not say the disk is full", err)
			}
			// Nothing half-written is left behind to fill the disk further.
			ents, _ := os.ReadDir(dir)
			for _, e := range ents {
				if strings.HasPrefix(e.Name(), ".") {
					t.Errorf("temporary file %s left behind", e.Name())
				}
			}
		})
	}
}

// crashSaverEnv makes the test binary a child that saves certificates in a loop.
const crashSaverEnv = "PM_TEST_STATE_SAVER"

// A save interrupted at any point — the child is killed with SIGKILL after a random delay —
// leaves a state dir that loads a certificate and the key that belongs to it. Before the fix
// the certificate and the key were renamed one after the other, so a crash between the two
// renames left a new certificate beside the old key.
func TestStateSurvivesACrashDuringSave(t *testing.T) {
	if dir := os.Getenv(crashSaverEnv); dir != "" {
		saveForever(dir)
		return
	}
	if testing.Short() {
		t.Skip("kills child processes in a loop")
	}
	pairs := newPairs(t, 3)
	pairDir := t.TempDir()
	for i, p := range pairs {
		if err := os.WriteFile(filepath.Join(pairDir, fmt.Sprintf("%d.cert", i)), p.cert, 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(pairDir, fmt.Sprintf("%d.key", i)), p.key, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	serials := map[string]bool{}
	for _, p := range pairs {
		serials[p.serial] = true
	}
	stateDir := t.TempDir()
	st := &State{Dir: stateDir}
	// Start from a state dir as today's agents have it: the certificate and key in two files.
	if err := os.WriteFile(filepath.Join(stateDir, certFile), pairs[0].cert, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(stateDir, keyFile), pairs[0].key, 0o600); err != nil {
		t.Fatal(err)
	}
	if got, err := loadedSerial(st); err != nil || got != pairs[0].serial {
		t.Fatalf("the two-file state dir does not load: %s, %v", got, err)
	}

	const rounds = 60
	for i := range rounds {
		cmd := exec.Command(os.Args[0], "-test.run=^TestStateSurvivesACrashDuringSave$")
		cmd.Env = append(os.Environ(), crashSaverEnv+"="+stateDir, "PM_TEST_STATE_PAIRS="+pairDir)
		out, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		cmd.Stderr = os.Stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		// Wait until it is saving, then kill it at a random point.
		line, _ := bufio.NewReader(out).ReadString('\n')
		if line != "saving\n" {
			cmd.Process.Kill()
			cmd.Wait()
			t.Fatalf("round %d: the saver said %q", i, line)
		}
		time.Sleep(time.Duration(rand.IntN(3000)) * time.Microsecond)
		if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		cmd.Wait()

		got, err := loadedSerial(st)
		if err != nil {
			ents, _ := os.ReadDir(stateDir)
			var names []string
			for _, e := range ents {
				names = append(names, e.Name())
			}
			t.Fatalf("round %d: after a crash the state does not load: %v (files: %v)", i, err, names)
		}
		if !serials[got] {
			t.Fatalf("round %d: loaded certificate %s is none of the saved ones", i, got)
		}
	}
}

// saveForever saves the pairs in PM_TEST_STATE_PAIRS into dir in turn until it is killed.
func saveForever(dir string) {
	pairDir := os.Getenv("PM_TEST_STATE_PAIRS")
	var pairs []pair
	for i := 0; ; i++ {
		c, err := os.ReadFile(filepath.Join(pairDir, strconv.Itoa(i)+".cert"))
		if errors.Is(err, os.ErrNotExist) {
			break
		}
		k, kerr := os.ReadFile(filepath.Join(pairDir, strconv.Itoa(i)+".key"))
		if err != nil || kerr != nil {
			fmt.Fprintln(os.Stderr, "read pairs:", err, kerr)
			os.Exit(3)
		}
		pairs = append(pairs, pair{cert: c, key: k})
	}
	st := &State{Dir: dir}
	fmt.Println("saving")
	for i := 0; ; i++ {
		p := pairs[i%len(pairs)]
		if err := st.saveCertificate(p.cert, p.key); err != nil {
			fmt.Fprintln(os.Stderr, "save:", err)
			os.Exit(3)
		}
	}
}

// FuzzRevokedServers reads any bytes as the state dir's list of revoked server certificates
// (pmd's words, kept by the agent): it never panics, and what it accepts saves and reads back
// the same.
func FuzzRevokedServers(f *testing.F) {
	for _, s := range []string{
		`{"serials":["5e1f","a0"]}`,
		`{"serials":[]}`,
		`{"serials":null}`,
		`{}`,
		``,
		`{"serials":"5e1f"}`,
		`{"serials":[1,2]}`,
		`[`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		dir := t.TempDir()
		if err := os.WriteFile(filepath.Join(dir, revokedServersFile), b, 0o600); err != nil {
			t.Fatal(err)
		}
		st := &State{Dir: dir}
		got, err := st.RevokedServers()
		if err != nil {
			return
		}
		if err := st.saveRevokedServers(got); err != nil {
			t.Fatal(err)
		}
		again, err := st.RevokedServers()
		if err != nil {
			t.Fatalf("a list the agent saved does not read back: %v", err)
		}
		want := slices.Clone(got)
		slices.Sort(want)
		if !slices.Equal(again, want) {
			t.Fatalf("read back %q, want %q", again, want)
		}
	})
}
