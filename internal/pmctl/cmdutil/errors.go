package cmdutil

import (
	"errors"
	"fmt"
)

// FlagError is a usage error: a bad flag, a missing or extra argument. It is printed with the
// command's usage.
type FlagError struct{ Err error }

func (e *FlagError) Error() string { return e.Err.Error() }
func (e *FlagError) Unwrap() error { return e.Err }

// FlagErrorf makes a FlagError.
func FlagErrorf(format string, args ...any) error {
	return &FlagError{Err: fmt.Errorf(format, args...)}
}

// ErrCancel means the user declined (answered no to a prompt). It exits 2, like an interrupt.
var ErrCancel = errors.New("cancelled")

// ErrSilent exits 1 without printing anything more: the command already explained.
var ErrSilent = errors.New("silent error")
