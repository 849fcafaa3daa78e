// Package secret keeps secrets out of logs and seals them at rest with AES-256-GCM under a
// versioned master key.
//
// A sealed value is "v1:<key id>:<base64url(nonce|ciphertext)>". The key id lets the master key
// be rotated: a Keyring opens values sealed under any key it holds and seals under its newest.
// Associated data (for example "hosts/<id>/token") binds a value to its row and column, so a
// ciphertext copied into another row does not open.
package secret

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
)

// Secret is a string that prints and logs as [redacted].
type Secret string

// Reveal returns the secret's value; call it only where the value is used.
func (s Secret) Reveal() string { return string(s) }

// String implements fmt.Stringer.
func (Secret) String() string { return "[redacted]" }

// GoString implements fmt.GoStringer.
func (Secret) GoString() string { return "[redacted]" }

// LogValue implements slog.LogValuer.
func (Secret) LogValue() slog.Value { return slog.StringValue("[redacted]") }

// MarshalText keeps a Secret out of JSON and YAML encodings by accident.
func (Secret) MarshalText() ([]byte, error) { return []byte("[redacted]"), nil }

// KeySize is the size of a master key in bytes (AES-256).
const KeySize = 32

// ErrOpen is returned when a sealed value cannot be opened: wrong key, wrong associated data,
// or a damaged value. It says nothing more, by design.
var ErrOpen = errors.New("secret: cannot open sealed value")

// Key is one master key and its id.
type Key struct {
	ID  string
	key [KeySize]byte
}

// NewKey returns a fresh random key with the given id.
func NewKey(id string) (Key, error) {
	k := Key{ID: id}
	if _, err := rand.Read(k.key[:]); err != nil {
		return Key{}, fmt.Errorf("generate master key: %w", err)
	}
	return k, nil
}

// Keyring holds master keys: the newest seals, all of them open. It is safe for concurrent use.
type Keyring struct {
	keys    map[string]cipher.AEAD
	current string
}

// NewKeyring makes a keyring whose current key is the last one given.
func NewKeyring(keys ...Key) (*Keyring, error) {
	if len(keys) == 0 {
		return nil, errors.New("secret: keyring needs at least one key")
	}
	r := &Keyring{keys: map[string]cipher.AEAD{}}
	for _, k := range keys {
		if !validID(k.ID) {
			return nil, fmt.Errorf("secret: key id %q: use 1-32 letters, digits, '-' or '_'", k.ID)
		}
		if _, dup := r.keys[k.ID]; dup {
			return nil, fmt.Errorf("secret: key id %q appears twice", k.ID)
		}
		block, err := aes.NewCipher(k.key[:])
		if err != nil {
			return nil, err
		}
		aead, err := cipher.NewGCM(block)
		if err != nil {
			return nil, err
		}
		r.keys[k.ID] = aead
		r.current = k.ID
	}
	return r, nil
}

// CurrentID is the id of the key that seals.
func (r *Keyring) CurrentID() string { return r.current }

// Seal encrypts plaintext under the current key, bound to ad.
func (r *Keyring) Seal(plaintext []byte, ad string) (string, error) {
	aead := r.keys[r.current]
	nonce := make([]byte, aead.NonceSize(), aead.NonceSize()+len(plaintext)+aead.Overhead())
	if _, err := rand.Read(nonce); err != nil {
		return "", fmt.Errorf("seal: %w", err)
	}
	out := aead.Seal(nonce, nonce, plaintext, []byte(ad))
	return "v1:" + r.current + ":" + base64.RawURLEncoding.EncodeToString(out), nil
}

// Open decrypts a value made by Seal with the same ad. Any failure is ErrOpen.
func (r *Keyring) Open(sealed, ad string) ([]byte, error) {
	parts := strings.SplitN(sealed, ":", 3)
	if len(parts) != 3 || parts[0] != "v1" {
		return nil, ErrOpen
	}
	aead, ok := r.keys[parts[1]]
	if !ok {
		return nil, fmt.Errorf("%w: sealed under unknown key %q", ErrOpen, parts[1])
	}
	raw, err := base64.RawURLEncoding.DecodeString(parts[2])
	if err != nil || len(raw) < aead.NonceSize()+aead.Overhead() {
		return nil, ErrOpen
	}
	pt, err := aead.Open(nil, raw[:aead.NonceSize()], raw[aead.NonceSize():], []byte(ad))
	if err != nil {
		return nil, ErrOpen
	}
	return pt, nil
}

// KeyID returns the id of the key a sealed value was sealed under, for rotation.
func KeyID(sealed string) string {
	parts := strings.SplitN(sealed, ":", 3)
	if len(parts) != 3 {
		return ""
	}
	return parts[1]
}

func validID(id string) bool {
	if id == "" || len(id) > 32 {
		return false
	}
	for _, c := range id {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
			return false
		}
	}
	return true
}

// The master key file holds one key per line, "<id> <64 hex digits>", oldest first; the last
// line is the current key. PMD_MASTER_KEY holds the same text (lines may be separated by ';').

// FormatKeys renders keys in the master key file format.
func FormatKeys(keys ...Key) []byte {
	var b strings.Builder
	for _, k := range keys {
		fmt.Fprintf(&b, "%s %s\n", k.ID, hex.EncodeToString(k.key[:]))
	}
	return []byte(b.String())
}

// ParseKeys reads the master key file format.
func ParseKeys(text string) ([]Key, error) {
	var keys []Key
	lines := strings.FieldsFunc(text, func(r rune) bool { return r == '\n' || r == ';' })
	for i, line := range lines {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		f := strings.Fields(line)
		if len(f) != 2 {
			return nil, fmt.Errorf("line %d: want \"<id> <64 hex digits>\"", i+1)
		}
		raw, err := hex.DecodeString(f[1])
		if err != nil || len(raw) != KeySize {
			return nil, fmt.Errorf("line %d: key must be 64 hex digits", i+1)
		}
		if !validID(f[0]) {
			return nil, fmt.Errorf("line %d: key id must be 1-32 letters, digits, '-' or '_'", i+1)
		}
		if slices.ContainsFunc(keys, func(k Key) bool { return k.ID == f[0] }) {
			return nil, fmt.Errorf("line %d: key id %q appears twice; give each key its own id", i+1, f[0])
		}
		k := Key{ID: f[0]}
		copy(k.key[:], raw)
		keys = append(keys, k)
	}
	if len(keys) == 0 {
		return nil, errors.New("no key found")
	}
	return keys, nil
}

// LoadKeyring reads the master key from env (if non-empty) or else from the file at path.
// The file must not be readable by group or others.
func LoadKeyring(path, env string) (*Keyring, error) {
	text := env
	src := "PMD_MASTER_KEY"
	if text == "" {
		src = path
		b, err := ReadKeyFile(path)
		if err != nil {
			return nil, err
		}
		text = string(b)
	}
	keys, err := ParseKeys(text)
	if err != nil {
		return nil, fmt.Errorf("master key %s is corrupt: %w", src, err)
	}
	return NewKeyring(keys...)
}

// ReadKeyFile returns the bytes of the master key file at path, refusing a file that group
// or others may read.
func ReadKeyFile(path string) ([]byte, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("master key: %w", err)
	}
	if fi.Mode().Perm()&0o077 != 0 {
		return nil, fmt.Errorf("master key %s: mode %o is open to others; chmod 600 it", path, fi.Mode().Perm())
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("master key: %w", err)
	}
	return b, nil
}

// WriteKeyFile replaces the master key file at path with data, atomically: data goes to a
// new file (mode 0600, the old file's owner and group) in the same directory, is synced, and
// is renamed over path, and the directory is synced. A crash leaves either the old file or
// the new one, never a mix; at worst a stray temporary file beside it. A symbolic link at path
// is followed, so the file it points to is the one replaced.
func WriteKeyFile(path string, data []byte) (err error) {
	if p, err := filepath.EvalSymlinks(path); err == nil {
		path = p
	}
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".*.tmp")
	if err != nil {
		return fmt.Errorf("write master key %s: %w", path, err)
	}
	tmp := f.Name()
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(tmp)
			err = fmt.Errorf("write master key %s: %w", path, err)
		}
	}()
	if err := f.Chmod(0o600); err != nil {
		return err
	}
	// pmd may run as another user than whoever rotates its key (root, say): the new file
	// must stay readable by the daemon.
	if fi, err := os.Stat(path); err == nil {
		if st, ok := fi.Sys().(*syscall.Stat_t); ok && (int(st.Uid) != os.Geteuid() || int(st.Gid) != os.Getegid()) {
			if err := f.Chown(int(st.Uid), int(st.Gid)); err != nil {
				return err
			}
		}
	}
	if _, err := f.Write(data); err != nil {
		return err
	}
	if err := f.Sync(); err != nil {
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp, path); err != nil {
		return err
	}
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// NextID returns an id for a new key that none of keys has: "k<n+1>", where n is the highest
// number among ids of the form "k<n>" (so k1, k2 → k3), or k1 if there is none.
func NextID(keys []Key) string {
	taken := map[string]bool{}
	n := 0
	for _, k := range keys {
		taken[k.ID] = true
		if rest, ok := strings.CutPrefix(k.ID, "k"); ok {
			if i, err := strconv.Atoi(rest); err == nil && i > n && i < 1<<30 {
				n = i
			}
		}
	}
	for {
		n++
		if id := "k" + strconv.Itoa(n); !taken[id] {
			return id
		}
	}
}
