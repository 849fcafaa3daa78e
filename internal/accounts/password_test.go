package accounts

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"testing"
	"unicode/utf8"
)

// cheap are valid parameters that make tests fast; they are not DefaultParams.
var cheap = Params{Memory: minMemory, Time: 1, Threads: 1, SaltLen: 16, KeyLen: 32}

var phc = regexp.MustCompile(`^\$argon2id\$v=19\$m=[0-9]+,t=[0-9]+,p=[0-9]+\$[A-Za-z0-9+/]+\$[A-Za-z0-9+/]+$`)

func TestHashPasswordRoundTrip(t *testing.T) {
	for _, pw := range []string{"correct horse battery staple", "", "ünïcødé pässwörd ✓", strings.Repeat("x", MaxPasswordBytes)} {
		enc, err := HashPassword(pw, DefaultParams)
		if err != nil {
			t.Fatal(err)
		}
		if !phc.MatchString(enc) {
			t.Fatalf("HashPassword = %q, not a PHC argon2id string", enc)
		}
		want := fmt.Sprintf("$m=%d,t=%d,p=%d$", DefaultParams.Memory, DefaultParams.Time, DefaultParams.Threads)
		if !strings.Contains(enc, want) {
			t.Errorf("HashPassword = %q, want it to record %q", enc, want)
		}
		ok, rehash, err := VerifyPassword(pw, enc)
		if err != nil || !ok || rehash {
			t.Fatalf("VerifyPassword(right password) = %v, %v, %v; want true, false, nil", ok, rehash, err)
		}
	}
}

func TestHashPasswordSaltsEachHash(t *testing.T) {
	a, err := HashPassword("same password", cheap)
	if err != nil {
		t.Fatal(err)
	}
	b, err := HashPassword("same password", cheap)
	if err != nil {
		t.Fatal(err)
	}
	if a == b {
		t.Fatalf("two hashes of one password are equal (%q): the salt is not random", a)
	}
}

func TestVerifyPasswordWrong(t *testing.T) {
	enc, err := HashPassword("the right one", cheap)
	if err != nil {
		t.Fatal(err)
	}
	for _, pw := range []string{"the right on", "the right one ", "The right one", "", "the right one\x00"} {
		ok, rehash, err := VerifyPassword(pw, enc)
		if err != nil || ok || rehash {
			t.Errorf("VerifyPassword(%q) = %v, %v, %v; want false, false, nil", pw, ok, rehash, err)
		}
	}
}

func TestVerifyPasswordNeedsRehash(t *testing.T) {
	enc, err := HashPassword("an older hash", cheap)
	if err != nil {
		t.Fatal(err)
	}
	ok, rehash, err := VerifyPassword("an older hash", enc)
	if err != nil || !ok || !rehash {
		t.Fatalf("VerifyPassword(hash with other params) = %v, %v, %v; want true, true, nil", ok, rehash, err)
	}
	// A wrong password learns nothing, not even that the hash is old.
	ok, rehash, err = VerifyPassword("a wrong guess", enc)
	if err != nil || ok || rehash {
		t.Fatalf("VerifyPassword(wrong, old hash) = %v, %v, %v; want false, false, nil", ok, rehash, err)
	}
}

func TestHashPasswordRefusesParamsItCouldNotVerify(t *testing.T) {
	for name, p := range map[string]Params{
		"zero":           {},
		"memory low":     {Memory: minMemory - 1, Time: 1, Threads: 1, SaltLen: 16, KeyLen: 32},
		"memory high":    {Memory: maxMemory + 1, Time: 1, Threads: 1, SaltLen: 16, KeyLen: 32},
		"time zero":      {Memory: minMemory, Time: 0, Threads: 1, SaltLen: 16, KeyLen: 32},
		"threads zero":   {Memory: minMemory, Time: 1, Threads: 0, SaltLen: 16, KeyLen: 32},
		"short salt":     {Memory: minMemory, Time: 1, Threads: 1, SaltLen: 4, KeyLen: 32},
		"short key":      {Memory: minMemory, Time: 1, Threads: 1, SaltLen: 16, KeyLen: 8},
		"too many lanes": {Memory: minMemory, Time: 1, Threads: maxThreads + 1, SaltLen: 16, KeyLen: 32},
	} {
		t.Run(name, func(t *testing.T) {
			enc, err := HashPassword("pw", p)
			if err == nil || enc != "" {
				t.Fatalf("HashPassword(%+v) = %q, %v; want an error", p, enc, err)
			}
		})
	}
}

func TestVerifyPasswordMalformed(t *testing.T) {
	good, err := HashPassword("pw", cheap)
	if err != nil {
		t.Fatal(err)
	}
	parts := strings.Split(good, "$")
	salt, key := parts[4], parts[5]
	with := func(i int, v string) string {
		p := append([]string(nil), parts...)
		p[i] = v
		return strings.Join(p, "$")
	}
	cases := map[string]string{
		"empty":              "",
		"bcrypt":             "$2a$10$N9qo8uLOickgx2ZMRZoMyeIjZAgcfl7p92ldGxad68LJZdL17lhWy",
		"argon2i":            with(1, "argon2i"),
		"argon2d":            with(1, "argon2d"),
		"upper-case alg":     with(1, "ARGON2ID"),
		"version 16":         with(2, "v=16"),
		"no version":         strings.Join(append(parts[:2:2], parts[3:]...), "$"),
		"no leading $":       strings.TrimPrefix(good, "$"),
		"trailing $":         good + "$",
		"trailing newline":   good + "\n",
		"leading space":      " " + good,
		"params reordered":   with(3, fmt.Sprintf("t=1,m=%d,p=1", minMemory)),
		"params spaced":      with(3, fmt.Sprintf("m=%d, t=1, p=1", minMemory)),
		"extra param":        with(3, fmt.Sprintf("m=%d,t=1,p=1,keyid=x", minMemory)),
		"missing param":      with(3, fmt.Sprintf("m=%d,t=1", minMemory)),
		"leading zero":       with(3, fmt.Sprintf("m=0%d,t=1,p=1", minMemory)),
		"plus sign":          with(3, fmt.Sprintf("m=+%d,t=1,p=1", minMemory)),
		"negative":           with(3, "m=-1,t=1,p=1"),
		"memory overflow":    with(3, "m=4294967296,t=1,p=1"),
		"memory 4 GiB":       with(3, "m=4294967295,t=1,p=1"),
		"memory too low":     with(3, "m=8,t=1,p=1"),
		"time zero":          with(3, fmt.Sprintf("m=%d,t=0,p=1", minMemory)),
		"time huge":          with(3, fmt.Sprintf("m=%d,t=1000000,p=1", minMemory)),
		"threads zero":       with(3, fmt.Sprintf("m=%d,t=1,p=0", minMemory)),
		"threads 256":        with(3, fmt.Sprintf("m=%d,t=1,p=256", minMemory)),
		"salt padded":        with(4, salt+"=="),
		"salt url alphabet":  with(4, strings.NewReplacer("+", "-", "/", "_").Replace(salt)+"-_"),
		"salt not base64":    with(4, "!!!!!!!!!!!!"),
		"salt empty":         with(4, ""),
		"salt too short":     with(4, "AAAAAA"),
		"salt non-canonical": with(4, salt[:len(salt)-1]+nonCanonical(salt[len(salt)-1])),
		"key padded":         with(5, key+"="),
		"key empty":          with(5, ""),
		"key too short":      with(5, key[:10]),
		"key too long":       with(5, key+key+key),
	}
	for name, enc := range cases {
		t.Run(name, func(t *testing.T) {
			ok, rehash, err := VerifyPassword("pw", enc)
			if !errors.Is(err, ErrMalformedHash) || ok || rehash {
				t.Fatalf("VerifyPassword(%q) = %v, %v, %v; want false, false, ErrMalformedHash", enc, ok, rehash, err)
			}
			// The encoding is from the database: the error names the field, not its bytes.
			for _, secret := range []string{salt, key} {
				if strings.Contains(err.Error(), secret) {
					t.Fatalf("error %q echoes the stored hash", err)
				}
			}
		})
	}
}

// nonCanonical returns a base64 digit that decodes like c's group but with non-zero trailing
// bits, for the last digit of a 16-byte salt (22 digits, 4 trailing bits).
func nonCanonical(c byte) string {
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
	i := strings.IndexByte(alphabet, c)
	return string(alphabet[i|1])
}

func TestDummyHashHasDefaultParams(t *testing.T) {
	p, _, _, err := decodeHash(dummyHash)
	if err != nil {
		t.Fatalf("dummyHash does not decode: %v", err)
	}
	if p != DefaultParams {
		t.Fatalf("dummyHash has %+v, DefaultParams are %+v: DummyVerify would not cost what a login costs; "+
			"regenerate it with HashPassword(<random>, DefaultParams)", p, DefaultParams)
	}
	for _, pw := range []string{"", "password", "dummy"} {
		if ok, _, err := VerifyPassword(pw, dummyHash); ok || err != nil {
			t.Fatalf("VerifyPassword(%q, dummyHash) = %v, %v; want false, nil", pw, ok, err)
		}
	}
	DummyVerify("anything")
}

func TestCheckPasswordPolicy(t *testing.T) {
	const email = "Ada.Lovelace@example.com"
	cases := []struct {
		pw   string
		want error
	}{
		{"", ErrPasswordTooShort},
		{"short", ErrPasswordTooShort},
		{"nine char", ErrPasswordTooShort},
		{"ääääääääö", ErrPasswordTooShort}, // 9 characters, 18 bytes: characters count
		{"äääääääääö", nil},                // 10 characters
		{strings.Repeat("ab", MaxPasswordBytes/2), nil},
		{strings.Repeat("ab", MaxPasswordBytes/2) + "c", ErrPasswordTooLong},
		{strings.Repeat("é", MaxPasswordBytes/2+1), ErrPasswordTooLong}, // 129 characters, 258 bytes
		{"valid start \xff\xfe bytes", ErrPasswordNotText},
		{"aaaaaaaaaaaa", ErrPasswordRepeated},
		{"............", ErrPasswordRepeated},
		{"😀😀😀😀😀😀😀😀😀😀", ErrPasswordRepeated},
		{"password123", ErrPasswordCommon},
		{"PassWord123", ErrPasswordCommon},
		{"qwertyuiop", ErrPasswordCommon},
		{"123456789012", ErrPasswordCommon},
		{"iloveyou12", ErrPasswordCommon},
		{"1q2w3e4r5t", ErrPasswordCommon},
		{"Ada.Lovelace@example.com", ErrPasswordHasEmail},
		{"ada.lovelace@EXAMPLE.com", ErrPasswordHasEmail},
		{"ada.lovelace", ErrPasswordHasEmail},
		{"ADA.LOVELACE", ErrPasswordHasEmail},
		{"ada.lovelace1", nil},
		{"correct horse battery staple", nil},
		{"Tr0ub4dor&3x", nil},
		{"          ab", nil}, // spaces are characters like any other
	}
	for _, c := range cases {
		t.Run(c.pw, func(t *testing.T) {
			err := CheckPasswordPolicy(c.pw, email)
			if !errors.Is(err, c.want) || (c.want == nil) != (err == nil) {
				t.Fatalf("CheckPasswordPolicy(%q) = %v, want %v", c.pw, err, c.want)
			}
		})
	}
}

func TestCheckPasswordPolicyOddEmails(t *testing.T) {
	// An email with no @, or one that is only a domain, must not make the local-part rule
	// refuse everything or panic.
	for _, email := range []string{"", "@", "@example.com", "no-at-sign-here", "  spaced@example.com  "} {
		if err := CheckPasswordPolicy("a perfectly fine passphrase", email); err != nil {
			t.Errorf("CheckPasswordPolicy(fine, %q) = %v", email, err)
		}
	}
	if err := CheckPasswordPolicy("spaced@example.com", "  spaced@example.com  "); !errors.Is(err, ErrPasswordHasEmail) {
		t.Errorf("a password equal to the trimmed email = %v, want ErrPasswordHasEmail", err)
	}
}

func TestPolicyMessagesSayWhatToDo(t *testing.T) {
	for _, err := range []error{ErrPasswordTooShort, ErrPasswordTooLong, ErrPasswordNotText,
		ErrPasswordRepeated, ErrPasswordCommon, ErrPasswordHasEmail} {
		msg := err.Error()
		if !strings.HasPrefix(msg, "use ") && !strings.HasPrefix(msg, "do not ") && !strings.Contains(msg, "choose ") {
			t.Errorf("%q does not tell the user what to do", msg)
		}
	}
	if !strings.Contains(ErrPasswordTooShort.Error(), "10") {
		t.Errorf("%q does not give the minimum", ErrPasswordTooShort)
	}
}

func TestCommonPasswordsList(t *testing.T) {
	set := commonPasswords()
	long := 0
	sc := bufio.NewScanner(bytes.NewReader(commonPasswordsText))
	for sc.Scan() {
		line := sc.Text()
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		if strings.TrimSpace(line) != line || strings.ContainsAny(line, " \t") {
			t.Errorf("entry %q has white space, which no form submits", line)
		}
		if _, ok := set[strings.ToLower(line)]; !ok {
			t.Errorf("entry %q is not in the loaded set", line)
		}
		if utf8.RuneCountInString(line) < MinPasswordChars {
			continue
		}
		long++
		// Every entry the length rule lets through must be refused by the list (or, for a
		// run of one character, by that rule), in any case.
		for _, pw := range []string{line, strings.ToUpper(line)} {
			if err := CheckPasswordPolicy(pw, "someone@example.com"); !errors.Is(err, ErrPasswordCommon) && !errors.Is(err, ErrPasswordRepeated) {
				t.Errorf("CheckPasswordPolicy(%q) = %v, want it refused as common", pw, err)
			}
		}
	}
	if len(set) < 1000 || long < 500 {
		t.Fatalf("the list has %d entries, %d of at least %d characters; want ≥ 1000 and ≥ 500", len(set), long, MinPasswordChars)
	}
}

// FuzzVerifyPassword feeds VerifyPassword hostile encodings (a stored hash is outside bytes:
// a corrupted or planted row). It checks that it never panics; that whatever it accepts is
// exactly the one canonical spelling of a hash within the bounds; that an error never claims
// a match; and that an accepted hash verifies the password it was made from.
func FuzzVerifyPassword(f *testing.F) {
	good, err := HashPassword("pw", cheap)
	if err != nil {
		f.Fatal(err)
	}
	parts := strings.Split(good, "$")
	f.Add("pw", good)
	f.Add("other", good)
	f.Add("pw", dummyHash)
	f.Add("", "")
	f.Add("pw", "$argon2id$v=19$m=8192,t=1,p=1$$")
	f.Add("pw", "$argon2id$v=19$m=4294967295,t=4294967295,p=255$"+parts[4]+"$"+parts[5])
	f.Add("pw", "$argon2id$v=19$m=08192,t=1,p=1$"+parts[4]+"$"+parts[5])
	f.Add("pw", "$argon2id$v=19$m=8192,t=1,p=1$"+parts[4]+"=$"+parts[5])
	f.Add("pw", "$argon2i$v=19$m=8192,t=1,p=1$"+parts[4]+"$"+parts[5])
	f.Add("pw", "$argon2id$v=19$m=8192,t=1,p=1,keyid=1$"+parts[4]+"$"+parts[5])
	f.Add("pw", "$argon2id$v=19$m=8192,t=1,p=1$"+parts[4]+"$"+parts[5]+"$")
	f.Fuzz(func(t *testing.T, pw, encoded string) {
		p, salt, key, derr := decodeHash(encoded)
		if derr != nil {
			if !errors.Is(derr, ErrMalformedHash) {
				t.Fatalf("decodeHash error %v does not wrap ErrMalformedHash", derr)
			}
		} else {
			if re := encodeHash(p, salt, key); re != encoded {
				t.Fatalf("decodeHash accepted %q, which re-encodes as %q: two spellings of one hash", encoded, re)
			}
			if err := p.check(); err != nil {
				t.Fatalf("decodeHash accepted out-of-bounds params: %v", err)
			}
			// Keep each run fast: the bounds allow up to 256 MiB × 16 passes, which is
			// correct for a login but would starve the fuzzer.
			if uint64(p.Memory)*uint64(p.Time) > 4*minMemory {
				return
			}
		}
		ok, rehash, err := VerifyPassword(pw, encoded)
		if (err != nil) != (derr != nil) {
			t.Fatalf("VerifyPassword error %v, decodeHash error %v: they disagree", err, derr)
		}
		if err != nil && (ok || rehash) {
			t.Fatalf("VerifyPassword = %v, %v with error %v", ok, rehash, err)
		}
		if err == nil && !ok && rehash {
			t.Fatal("needsRehash reported for a wrong password")
		}
		if err == nil {
			// Re-hash pw with the decoded params and salt: it must match exactly when ok.
			same := encodeHash(p, salt, deriveKey(pw, p, salt)) == encoded
			if same != ok {
				t.Fatalf("VerifyPassword ok = %v, but recomputing the key gives match = %v", ok, same)
			}
		}
	})
}

// BenchmarkHashPassword measures DefaultParams beside the alternatives considered, so that
// README.md can show why DefaultParams were chosen. A login is one verification, which costs
// one hash; a sign-up hashes once and then logs in.
//
//	go test -run '^$' -bench 'HashPassword|VerifyPassword' -benchtime 20x ./internal/accounts/
func BenchmarkHashPassword(b *testing.B) {
	for _, c := range []struct {
		name string
		p    Params
	}{
		{"default", DefaultParams},
		{"owasp-min", Params{Memory: 19 * 1024, Time: 2, Threads: 1, SaltLen: 16, KeyLen: 32}},
		{"owasp-one-pass", Params{Memory: 46 * 1024, Time: 1, Threads: 1, SaltLen: 16, KeyLen: 32}},
		{"two-lanes", Params{Memory: 32 * 1024, Time: 2, Threads: 2, SaltLen: 16, KeyLen: 32}},
		{"rfc9106", Params{Memory: 64 * 1024, Time: 3, Threads: 4, SaltLen: 16, KeyLen: 32}},
	} {
		b.Run(fmt.Sprintf("%s-m%dMiB-t%d-p%d", c.name, c.p.Memory/1024, c.p.Time, c.p.Threads), func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := HashPassword("correct horse battery staple", c.p); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "hashes/s")
			b.ReportMetric(b.Elapsed().Seconds()*1000/float64(b.N), "ms/hash")
		})
	}
}

// BenchmarkVerifyPassword is one login's password check with DefaultParams: its latency.
func BenchmarkVerifyPassword(b *testing.B) {
	enc, err := HashPassword("correct horse battery staple", DefaultParams)
	if err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		if ok, _, err := VerifyPassword("correct horse battery staple", enc); !ok || err != nil {
			b.Fatalf("VerifyPassword = %v, %v", ok, err)
		}
	}
	b.ReportMetric(b.Elapsed().Seconds()*1000/float64(b.N), "ms/login")
}

// BenchmarkVerifyPasswordParallel is logins with DefaultParams from as many goroutines as
// GOMAXPROCS: the throughput a pmd on this machine has for logins before they queue.
func BenchmarkVerifyPasswordParallel(b *testing.B) {
	enc, err := HashPassword("correct horse battery staple", DefaultParams)
	if err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if ok, _, err := VerifyPassword("correct horse battery staple", enc); !ok || err != nil {
				b.Errorf("VerifyPassword = %v, %v", ok, err)
				return
			}
		}
	})
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "hashes/s")
}
