// Command build builds the stand-in gateway image from source, for tests and offline demos:
//
//	go run ./examples/standin-gateway/build [tag]
//
// The image has no base: nothing is pulled.
package main

import (
	"context"
	"fmt"
	"os"

	"github.com/pocketmolt/pocketmolt/internal/runtime/docker"
	"github.com/pocketmolt/pocketmolt/internal/standin"
)

func main() {
	tag := standin.Image
	if len(os.Args) > 1 {
		tag = os.Args[1]
	}
	d, err := docker.New("")
	if err == nil {
		err = standin.Build(context.Background(), d, tag)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "build:", err)
		os.Exit(1)
	}
	fmt.Println("built", tag)
}
