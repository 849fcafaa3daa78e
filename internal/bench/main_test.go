package bench

import (
	"context"
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/moby/moby/client"
)

// TestMain removes the image this run built (benchImage), pass or fail.
func TestMain(m *testing.M) {
	code := m.Run()
	if imageBuilt.Load() {
		if sdk, err := client.New(client.FromEnv); err == nil {
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			if _, err := sdk.ImageRemove(ctx, benchImage, client.ImageRemoveOptions{PruneChildren: true}); err != nil {
				fmt.Fprintf(os.Stderr, "remove bench image %s: %v\n", benchImage, err)
			}
			cancel()
			sdk.Close()
		}
	}
	os.Exit(code)
}
