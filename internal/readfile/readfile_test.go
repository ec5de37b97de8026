package readfile

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

func TestRegular(t *testing.T) {
	dir := t.TempDir()
	plain := filepath.Join(dir, "plain")
	os.WriteFile(plain, []byte("12345"), 0o600)
	fifo := filepath.Join(dir, "fifo")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name  string
		path  string
		limit int64
		want  string
		err   error
	}{
		{"fits", plain, 5, "12345", nil},
		{"over the cap", plain, 4, "", ErrTooLarge},
		{"fifo", fifo, 100, "", ErrNotRegular},
		{"directory", dir, 100, "", ErrNotRegular},
		{"missing", filepath.Join(dir, "nope"), 100, "", fs.ErrNotExist},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			done := make(chan struct{})
			var got []byte
			var err error
			go func() { got, err = Regular(tt.path, tt.limit); close(done) }()
			select {
			case <-done:
			case <-time.After(10 * time.Second):
				t.Fatal("Regular blocked (a FIFO must not hang the reader)")
			}
			if tt.err == nil {
				if err != nil || string(got) != tt.want {
					t.Fatalf("Regular = %q, %v; want %q", got, err, tt.want)
				}
				return
			}
			if !errors.Is(err, tt.err) {
				t.Fatalf("Regular = %q, %v; want an error wrapping %v", got, err, tt.err)
			}
			if tt.err != fs.ErrNotExist && !strings.Contains(err.Error(), tt.path) {
				t.Errorf("error %q does not name the file", err)
			}
		})
	}
}
