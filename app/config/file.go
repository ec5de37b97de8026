package config

import (
	"bytes"
	_ "embed"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/quotabar/quotabar/internal/atomicfile"
	"github.com/quotabar/quotabar/internal/readfile"
)

// defaultConfig is written on first start and by `quotabar config init`.
//
//go:embed default_config.toml
var defaultConfig []byte

// DefaultConfig returns the commented configuration file written on first
// start.
func DefaultConfig() []byte { return bytes.Clone(defaultConfig) }

// WriteDefaultConfig writes the commented default configuration to path,
// creating its directory (0700). The file is 0600: it may later hold
// addresses or paths a person would rather keep private. It fails with
// fs.ErrExist if the file exists, unless overwrite is set.
func WriteDefaultConfig(path string, overwrite bool) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return fmt.Errorf("creating the config directory: %w", err)
	}
	if !overwrite {
		if _, err := os.Lstat(path); err == nil {
			return fmt.Errorf("%s: %w", path, fs.ErrExist)
		}
	}
	if err := atomicfile.WriteFile(path, defaultConfig, 0o600); err != nil {
		return fmt.Errorf("writing the default config: %w", err)
	}
	return nil
}

// EnsureConfig creates the default configuration at path if there is no file
// there yet; it reports whether it did.
func EnsureConfig(path string) (bool, error) {
	if _, err := os.Stat(path); err == nil {
		return false, nil
	} else if !errors.Is(err, fs.ErrNotExist) {
		return false, fmt.Errorf("reading the config: %w", err)
	}
	if err := WriteDefaultConfig(path, false); err != nil {
		return false, err
	}
	return true, nil
}

// MaxFileSize caps the configuration file: the commented default is about
// 4 KB, and a file a hundred times bigger is a mistake (or an attack on the
// parser), not a configuration.
const MaxFileSize = 1 << 20

// ReadConfigFile reads the configuration file at path: only a regular file
// (a FIFO in its place must not hang start-up or the watcher) of at most
// MaxFileSize bytes. A missing file gives an error wrapping fs.ErrNotExist.
func ReadConfigFile(path string) ([]byte, error) {
	data, err := readfile.Regular(path, MaxFileSize)
	if err != nil {
		return nil, fmt.Errorf("reading the config: %w", err)
	}
	return data, nil
}

// Load reads and checks the configuration file at path. Its errors name the
// file, the line and the key: an Errors listing every problem, or a plain
// error when the file cannot be read.
func Load(path string) (*Config, error) {
	data, err := ReadConfigFile(path)
	if err != nil {
		return nil, err
	}
	return Parse(path, data)
}
