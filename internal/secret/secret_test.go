package secret

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

func mustKey(t *testing.T, id string) Key {
	t.Helper()
	k, err := NewKey(id)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func mustRing(t *testing.T, keys ...Key) *Keyring {
	t.Helper()
	r, err := NewKeyring(keys...)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func TestSealOpen(t *testing.T) {
	r := mustRing(t, mustKey(t, "k1"))
	sealed, err := r.Seal([]byte("sk-ant-123"), "bots/b1/secrets")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(sealed, "v1:k1:") || strings.Contains(sealed, "sk-ant") {
		t.Fatalf("sealed = %q", sealed)
	}
	if KeyID(sealed) != "k1" {
		t.Errorf("KeyID = %q", KeyID(sealed))
	}
	pt, err := r.Open(sealed, "bots/b1/secrets")
	if err != nil || string(pt) != "sk-ant-123" {
		t.Fatalf("Open = %q, %v", pt, err)
	}
	again, _ := r.Seal([]byte("sk-ant-123"), "bots/b1/secrets")
	if again == sealed {
		t.Error("two seals of one value are equal: the nonce is not fresh")
	}
}

// TestOpenRefuses: every way a sealed value can be wrong is ErrOpen, and nothing is returned.
func TestOpenRefuses(t *testing.T) {
	r := mustRing(t, mustKey(t, "k1"))
	other := mustRing(t, mustKey(t, "k1")) // same id, different key
	sealed, _ := r.Seal([]byte("value"), "hosts/h1/token")
	body := sealed[len("v1:k1:"):]
	raw, _ := base64.RawURLEncoding.DecodeString(body)
	raw[len(raw)/2] ^= 1 // one bit of the ciphertext
	tampered := base64.RawURLEncoding.EncodeToString(raw)
	tests := []struct {
		name   string
		ring   *Keyring
		sealed string
		ad     string
	}{
		{"other row", r, sealed, "hosts/h2/token"},
		{"empty ad", r, sealed, ""},
		{"other key, same id", other, sealed, "hosts/h1/token"},
		{"unknown key id", r, "v1:k9:" + body, "hosts/h1/token"},
		{"unknown version", r, "v2:k1:" + body, "hosts/h1/token"},
		{"not sealed", r, "plain text", "hosts/h1/token"},
		{"empty", r, "", "hosts/h1/token"},
		{"bad base64", r, "v1:k1:***", "hosts/h1/token"},
		{"too short", r, "v1:k1:AAAA", "hosts/h1/token"},
		{"tampered", r, "v1:k1:" + tampered, "hosts/h1/token"},
		{"truncated", r, sealed[:len(sealed)-4], "hosts/h1/token"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			pt, err := tt.ring.Open(tt.sealed, tt.ad)
			if !errors.Is(err, ErrOpen) || pt != nil {
				t.Fatalf("Open = %q, %v; want ErrOpen", pt, err)
			}
		})
	}
}

// TestRotation: a keyring with an added key seals under the new one and still opens what
// the old one sealed; a keyring without the old key does not.
func TestRotation(t *testing.T) {
	k1, k2 := mustKey(t, "k1"), mustKey(t, "k2")
	old := mustRing(t, k1)
	sealedOld, _ := old.Seal([]byte("a"), "x")

	rotated := mustRing(t, k1, k2)
	if rotated.CurrentID() != "k2" {
		t.Fatalf("CurrentID = %s", rotated.CurrentID())
	}
	if pt, err := rotated.Open(sealedOld, "x"); err != nil || string(pt) != "a" {
		t.Fatalf("old value after rotation: %q, %v", pt, err)
	}
	sealedNew, _ := rotated.Seal([]byte("b"), "x")
	if KeyID(sealedNew) != "k2" {
		t.Fatalf("new value sealed under %s", KeyID(sealedNew))
	}
	if _, err := old.Open(sealedNew, "x"); !errors.Is(err, ErrOpen) {
		t.Fatalf("old ring opened a value sealed under k2: %v", err)
	}

	// The key file round trip keeps the order, so the last key still seals.
	keys, err := ParseKeys(string(FormatKeys(k1, k2)))
	if err != nil {
		t.Fatal(err)
	}
	reread := mustRing(t, keys...)
	if reread.CurrentID() != "k2" {
		t.Fatalf("reread CurrentID = %s", reread.CurrentID())
	}
	for _, s := range []string{sealedOld, sealedNew} {
		if _, err := reread.Open(s, "x"); err != nil {
			t.Fatalf("reread ring: %v", err)
		}
	}
}

func TestNewKeyringRefuses(t *testing.T) {
	k := mustKey(t, "k1")
	if _, err := NewKeyring(); err == nil {
		t.Error("empty keyring accepted")
	}
	if _, err := NewKeyring(Key{ID: "bad id"}); err == nil {
		t.Error("bad id accepted")
	}
	if _, err := NewKeyring(k, k); err == nil {
		t.Error("duplicate id accepted")
	}
}

func TestParseKeys(t *testing.T) {
	hex64 := strings.Repeat("ab", 32)
	tests := []struct {
		name    string
		text    string
		wantIDs []string
		wantErr string
	}{
		{"one", "k1 " + hex64 + "\n", []string{"k1"}, ""},
		{"comments and blanks", "# master key\n\nk1 " + hex64 + "\n  k2 " + hex64 + "  \n", []string{"k1", "k2"}, ""},
		{"env form with ;", "k1 " + hex64 + ";k2 " + hex64, []string{"k1", "k2"}, ""},
		{"empty", "", nil, "no key found"},
		{"only comments", "# nothing\n", nil, "no key found"},
		{"one field", hex64, nil, "line 1"},
		{"three fields", "k1 " + hex64 + " extra", nil, "line 1"},
		{"short key", "k1 abcd", nil, "64 hex digits"},
		{"not hex", "k1 " + strings.Repeat("zz", 32), nil, "64 hex digits"},
		{"bad id", "k/1 " + hex64, nil, "key id"},
		{"duplicate id", "k1 " + hex64 + "\nk1 " + strings.Repeat("cd", 32), nil, "appears twice"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			keys, err := ParseKeys(tt.text)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want %q", err, tt.wantErr)
				}
				if strings.Contains(err.Error(), "abab") || strings.Contains(err.Error(), "cdcd") {
					t.Fatalf("error leaks key material: %v", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			var ids []string
			for _, k := range keys {
				ids = append(ids, k.ID)
			}
			if fmt.Sprint(ids) != fmt.Sprint(tt.wantIDs) {
				t.Fatalf("ids = %v, want %v", ids, tt.wantIDs)
			}
		})
	}
}

func TestLoadKeyring(t *testing.T) {
	dir := t.TempDir()
	k1 := mustKey(t, "k1")
	good := filepath.Join(dir, "master.key")
	if err := os.WriteFile(good, FormatKeys(k1), 0o600); err != nil {
		t.Fatal(err)
	}
	open := filepath.Join(dir, "open.key")
	if err := os.WriteFile(open, FormatKeys(k1), 0o644); err != nil {
		t.Fatal(err)
	}
	corrupt := filepath.Join(dir, "corrupt.key")
	if err := os.WriteFile(corrupt, []byte("k1 nothex\n"), 0o600); err != nil {
		t.Fatal(err)
	}

	r, err := LoadKeyring(good, "")
	if err != nil || r.CurrentID() != "k1" {
		t.Fatalf("file: %v", err)
	}
	k2 := mustKey(t, "env2")
	r, err = LoadKeyring(filepath.Join(dir, "missing"), string(FormatKeys(k2)))
	if err != nil || r.CurrentID() != "env2" {
		t.Fatalf("env wins over a missing file: %v", err)
	}
	for _, tt := range []struct{ path, env, want string }{
		{filepath.Join(dir, "missing"), "", "no such file"},
		{open, "", "chmod 600"},
		{corrupt, "", "is corrupt"},
		{good, "garbage", "PMD_MASTER_KEY is corrupt"},
	} {
		if _, err := LoadKeyring(tt.path, tt.env); err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("LoadKeyring(%s, %q) = %v, want %q", filepath.Base(tt.path), tt.env, err, tt.want)
		}
	}
}

// TestSecretRedacted: a Secret never prints, logs or marshals its value.
func TestSecretRedacted(t *testing.T) {
	s := Secret("hunter2")
	if s.Reveal() != "hunter2" {
		t.Fatal("Reveal")
	}
	var logs bytes.Buffer
	slog.New(slog.NewJSONHandler(&logs, nil)).Info("x", "token", s)
	j, _ := json.Marshal(struct{ Token Secret }{s})
	outs := []string{
		fmt.Sprint(s), fmt.Sprintf("%v %s %+v %#v", s, s, s, s),
		fmt.Sprintf("%v", struct{ T Secret }{s}), logs.String(), string(j),
	}
	for _, out := range outs {
		if strings.Contains(out, "hunter2") || !strings.Contains(out, "[redacted]") {
			t.Errorf("leaks or lacks [redacted]: %s", out)
		}
	}
}

func TestNextID(t *testing.T) {
	for _, tc := range []struct {
		ids  []string
		want string
	}{
		{nil, "k1"},
		{[]string{"k1"}, "k2"},
		{[]string{"k1", "k2"}, "k3"},
		{[]string{"k7", "k3"}, "k8"},
		{[]string{"prod"}, "k1"},
		{[]string{"prod", "k1", "k01"}, "k2"},
		{[]string{"k99999999999999999999"}, "k1"},
	} {
		var keys []Key
		for _, id := range tc.ids {
			keys = append(keys, Key{ID: id})
		}
		got := NextID(keys)
		if got != tc.want {
			t.Errorf("NextID(%v) = %s, want %s", tc.ids, got, tc.want)
		}
		if _, err := NewKeyring(append(keys, Key{ID: got})...); err != nil {
			t.Errorf("NextID(%v) = %s does not make a keyring: %v", tc.ids, got, err)
		}
	}
}

func TestWriteKeyFile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "master.key")
	k1, k2 := mustKey(t, "k1"), mustKey(t, "k2")
	if err := os.WriteFile(path, FormatKeys(k1), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := WriteKeyFile(path, FormatKeys(k1, k2)); err != nil {
		t.Fatal(err)
	}
	r, err := LoadKeyring(path, "")
	if err != nil || r.CurrentID() != "k2" {
		t.Fatalf("after WriteKeyFile: %v, current %v", err, r)
	}
	fi, err := os.Stat(path)
	if err != nil || fi.Mode() != 0o600 {
		t.Fatalf("mode %v (%v), want 0600", fi.Mode(), err)
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 {
		t.Errorf("files left beside the key: %v", entries)
	}

	// A link is followed: the file it names is replaced, the link stays.
	link := filepath.Join(dir, "link.key")
	if err := os.Symlink(path, link); err != nil {
		t.Fatal(err)
	}
	if err := WriteKeyFile(link, FormatKeys(k2)); err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Lstat(link); err != nil || fi.Mode()&os.ModeSymlink == 0 {
		t.Errorf("the link was replaced (%v)", err)
	}
	if b, _ := os.ReadFile(path); !bytes.Equal(b, FormatKeys(k2)) {
		t.Error("the linked file was not rewritten")
	}

	if err := WriteKeyFile(filepath.Join(dir, "missing", "master.key"), FormatKeys(k1)); err == nil {
		t.Error("WriteKeyFile into a missing directory succeeded")
	}
}

// TestWriteKeyFileKeepsOwner: root rotating the key of a daemon that runs as another user
// leaves the file that user's.
func TestWriteKeyFileKeepsOwner(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to give a file away")
	}
	path := filepath.Join(t.TempDir(), "master.key")
	if err := os.WriteFile(path, FormatKeys(mustKey(t, "k1")), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(path, 65534, 65534); err != nil {
		t.Fatal(err)
	}
	if err := WriteKeyFile(path, FormatKeys(mustKey(t, "k2"))); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if st := fi.Sys().(*syscall.Stat_t); st.Uid != 65534 || st.Gid != 65534 {
		t.Errorf("owner %d:%d after WriteKeyFile, want 65534:65534", st.Uid, st.Gid)
	}
}
