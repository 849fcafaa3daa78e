package accounts

import (
	"errors"
	"net/mail"
	"net/netip"
	"strings"
	"unicode"
)

// MaxEmailBytes is the longest address SMTP can carry (RFC 5321's path limit less its
// brackets).
const MaxEmailBytes = 254

// NormalizeEmail returns email trimmed and in lower case, or an error whose message tells the
// person what to fix: it must be one bare address ("ada@example.com", not "Ada
// <ada@example.com>" or a list), at most MaxEmailBytes bytes, with a domain.
func NormalizeEmail(email string) (string, error) {
	e := strings.ToLower(strings.TrimSpace(email))
	switch {
	case e == "":
		return "", errors.New("enter your email address")
	case len(e) > MaxEmailBytes:
		return "", errors.New("this email address is too long")
	case strings.IndexFunc(e, func(r rune) bool { return unicode.IsSpace(r) || unicode.IsControl(r) }) >= 0:
		return "", errors.New("an email address has no spaces; enter one address, such as ada@example.com")
	}
	a, err := mail.ParseAddress(e)
	// Only a bare address parses back to itself: a name, a comment or a list does not.
	if err != nil || a.Name != "" || a.Address != e {
		return "", errors.New("this is not an email address; enter one address, such as ada@example.com")
	}
	at := strings.LastIndexByte(e, '@')
	if at <= 0 || at == len(e)-1 {
		return "", errors.New("this is not an email address; enter one address, such as ada@example.com")
	}
	return e, nil
}

// ipKey is the rate-limit key of a client address: an IPv4 address as it is, an IPv6 address
// as its /64, since one customer's connection holds a whole /64 and could otherwise pick a
// fresh address per attempt. What does not parse is used as it is, cut to a bound.
func ipKey(addr string) string {
	a, err := netip.ParseAddr(addr)
	if err != nil {
		if ap, err2 := netip.ParseAddrPort(addr); err2 == nil {
			a, err = ap.Addr(), nil
		}
	}
	if err != nil {
		if len(addr) > 64 {
			addr = addr[:64]
		}
		return "?" + addr
	}
	a = a.Unmap()
	if a.Is6() {
		p, _ := a.Prefix(64)
		return p.String()
	}
	return a.String()
}
