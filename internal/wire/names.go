package wire

import "regexp"

var nameRE = regexp.MustCompile(`^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$`)

// ValidName reports whether name is DNS-safe, as host and bot names must be: 1-63 lower-case
// letters, digits and dashes, not starting or ending with a dash.
func ValidName(name string) bool { return nameRE.MatchString(name) }

// NameRule says what ValidName accepts, for error messages.
const NameRule = "use 1-63 lower-case letters, digits and dashes, not starting or ending with a dash"
