package cmdutil

import "github.com/pocketmolt/pocketmolt/internal/pmctl/iostreams"

// Confirm asks question when a prompt is possible and yes is false. It returns ErrCancel when
// the answer is no; without a terminal it does not ask.
func Confirm(ios *iostreams.IOStreams, yes bool, question string) error {
	if yes || !ios.CanPrompt {
		return nil
	}
	ok, err := ios.Confirm(question)
	if err != nil {
		return err
	}
	if !ok {
		return ErrCancel
	}
	return nil
}
