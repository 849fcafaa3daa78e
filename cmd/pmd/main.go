// Command pmd is PocketMolt's control daemon.
package main

import (
	"os"

	"github.com/pocketmolt/pocketmolt/internal/pmd"
)

func main() { os.Exit(pmd.Main(os.Args[1:], os.Stdout, os.Stderr)) }
