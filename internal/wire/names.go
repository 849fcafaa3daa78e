package wire

import "regexp"

var nameRE = regexp.MustCompile(`^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$`)

// ValidName reports whether name is DNS-safe, as host and bot names must be: 1-63 lower-case
// letters, digits and dashes, not starting or ending with a dash.
func ValidName(name string) bool { return nameRE.MatchString(name) }

// NameRule says what ValidName accepts, for error messages.
const NameRule = "use 1-63 lower-case letters, digits and dashes, not starting or ending with a dash"

// ValidBotID reports whether id has the shape of a bot id, as hosts report them and pmd
// checks them: a valid name (pmd makes them "b-" and hex digits).
func ValidBotID(id string) bool { return ValidName(id) }

// LowerHex reports whether s is min to max lower-case hexadecimal digits: a container id, a
// usage record id.
func LowerHex(s string, min, max int) bool {
	if len(s) < min || len(s) > max {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}
