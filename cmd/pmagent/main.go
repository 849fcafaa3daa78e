// Command pmagent is PocketMolt's host agent.
package main

import (
	"os"

	"github.com/pocketmolt/pocketmolt/internal/pmagent"
)

func main() { os.Exit(pmagent.Main(os.Args[1:], os.Stdout, os.Stderr)) }
