package main

// `quotabar config path|init|check`: needs only app/config and limiter,
// never a running daemon.

import (
	"errors"
	"fmt"
	"io/fs"

	"github.com/quotabar/quotabar/app/config"
	"github.com/quotabar/quotabar/limiter"
)

type configCmd struct {
	Path  configPathCmd  `cmd:"" help:"Print the configuration file's path."`
	Init  configInitCmd  `cmd:"" help:"Write the commented default configuration."`
	Check configCheckCmd `cmd:"" help:"Check the configuration file; print OK or each problem as file:line: key: message."`
}

type configPathCmd struct{}

func (c *configPathCmd) Run(g *globals) error {
	path, err := g.configPath()
	if err != nil {
		return err
	}
	fmt.Println(path)
	return nil
}

type configInitCmd struct {
	Force bool `help:"Overwrite an existing file."`
}

func (c *configInitCmd) Run(g *globals) error {
	path, err := g.configPath()
	if err != nil {
		return err
	}
	if err := config.WriteDefaultConfig(path, c.Force); err != nil {
		if errors.Is(err, fs.ErrExist) {
			return fmt.Errorf("%s already exists; use --force to overwrite it with the default", path)
		}
		return err
	}
	fmt.Printf("wrote %s\n", path)
	return nil
}

type configCheckCmd struct{}

func (c *configCheckCmd) Run(g *globals) error {
	path, err := g.configPath()
	if err != nil {
		return err
	}
	cfg, err := config.Load(path)
	if errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("there is no configuration file at %s; 'quotabar config init' writes the default one (the app also does on first start)", path)
	}
	var errs config.Errors
	if errors.As(err, &errs) {
		return &exitError{code: 1, msg: errs.Error()}
	}
	if err != nil {
		return err
	}
	// The daemon hands the file to the limiter, which checks it once more:
	// check means "the daemon would accept this".
	l, err := limiter.New(cfg.Limiter())
	if err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	l.Close()
	fmt.Printf("OK: %s (%s, %s)\n", path, count(len(cfg.Services), "service"), count(len(cfg.Agents), "agent"))
	return nil
}

// count writes n and the noun, plural unless n is 1.
func count(n int, noun string) string {
	if n == 1 {
		return "1 " + noun
	}
	return fmt.Sprintf("%d %ss", n, noun)
}
