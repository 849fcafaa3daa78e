// Command pmctl is the operator CLI of PocketMolt: a thin client of pmd's admin API.
package main

import (
	"os"

	"github.com/pocketmolt/pocketmolt/internal/pmctl"
)

func main() { os.Exit(pmctl.Main()) }
