package main

// The commands that run the daemon: bare `quotabar` (the menu-bar app) and
// `quotabar serve` (the daemon alone).

import (
	"context"

	"github.com/quotabar/quotabar/app/daemon"
	"github.com/quotabar/quotabar/app/tray"
)

type appCmd struct{}

func (c *appCmd) Run(g *globals) error { return tray.Run(context.Background(), g.options()) }

type serveCmd struct{}

func (c *serveCmd) Run(g *globals) error { return daemon.RunDaemon(context.Background(), g.options()) }
