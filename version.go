package main

// `quotabar version`.

import (
	"fmt"
	"runtime"

	"github.com/quotabar/quotabar/ipc/wire"
)

type versionCmd struct{}

func (c *versionCmd) Run() error {
	fmt.Printf("quotabar %s (API v1, %s %s/%s)\n", wire.Version, runtime.Version(), runtime.GOOS, runtime.GOARCH)
	return nil
}
