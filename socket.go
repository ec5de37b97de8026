package main

// `quotabar socket`: the socket path clients use.

import "fmt"

type socketCmd struct{}

func (c *socketCmd) Run(g *globals) error {
	path, err := g.socketPath()
	if err != nil {
		return err
	}
	fmt.Println(path)
	return nil
}
