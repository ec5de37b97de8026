// Command iconset writes the PNG files of a macOS .iconset directory (the
// input of `iconutil -c icns`), drawn by package icons. build.sh app runs it;
// nothing it writes is committed.
//
//	go run ./app/icons/iconset DIR
package main

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/quotabar/quotabar/app/icons"
)

func main() {
	if len(os.Args) != 2 {
		fmt.Fprintln(os.Stderr, "usage: iconset DIR (e.g. build/quotabar.iconset)")
		os.Exit(2)
	}
	if err := write(os.Args[1]); err != nil {
		fmt.Fprintln(os.Stderr, "iconset:", err)
		os.Exit(1)
	}
}

func write(dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	files := map[string][]byte{}
	// The sizes iconutil expects: each point size at 1x and 2x.
	for _, pt := range []int{16, 32, 128, 256, 512} {
		files[fmt.Sprintf("icon_%dx%d.png", pt, pt)] = icons.AppIcon(pt)
		files[fmt.Sprintf("icon_%dx%d@2x.png", pt, pt)] = icons.AppIcon(2 * pt)
	}
	for name, b := range files {
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o644); err != nil {
			return err
		}
	}
	return nil
}
