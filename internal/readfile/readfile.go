// Package readfile reads the small files a person may edit or replace under
// quotabar's feet (the configuration, the saved state): only regular files,
// and only up to a size cap, so that a FIFO, a device or a huge file put in
// their place makes a clear error instead of a hang or an exhausted memory.
package readfile

import (
	"errors"
	"fmt"
	"io"
	"os"
	"syscall"
)

// ErrNotRegular is wrapped by Regular's error for a path that is a FIFO, a
// device, a socket or a directory.
var ErrNotRegular = errors.New("not a regular file")

// ErrTooLarge is wrapped by Regular's error for a file over the cap.
var ErrTooLarge = errors.New("file too large")

// Regular reads the regular file at path, at most limit bytes. A missing
// file gives an error wrapping fs.ErrNotExist, as os.ReadFile's does.
//
// The file is opened non-blocking: opening a FIFO for reading otherwise
// blocks until a writer comes, which would hang start-up (signals
// included) or the configuration watcher. The file's type is then checked
// on the open descriptor, so a file swapped between a check and the open
// cannot slip through.
func Regular(path string, limit int64) ([]byte, error) {
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("%s is a %s, %w: replace it with a plain file", path, kind(fi.Mode()), ErrNotRegular)
	}
	if fi.Size() > limit {
		return nil, fmt.Errorf("%s is %d bytes, over the %d-byte cap (%w); a real one is a few kilobytes", path, fi.Size(), limit, ErrTooLarge)
	}
	// The size may grow after the Stat: read one byte past the cap to tell.
	data, err := io.ReadAll(io.LimitReader(f, limit+1))
	if err != nil {
		return nil, err
	}
	if int64(len(data)) > limit {
		return nil, fmt.Errorf("%s is over the %d-byte cap (%w); a real one is a few kilobytes", path, limit, ErrTooLarge)
	}
	return data, nil
}

func kind(m os.FileMode) string {
	switch {
	case m&os.ModeNamedPipe != 0:
		return "named pipe (FIFO)"
	case m&os.ModeDir != 0:
		return "directory"
	case m&os.ModeSocket != 0:
		return "socket"
	case m&os.ModeDevice != 0:
		return "device"
	}
	return "special file (" + m.Type().String() + ")"
}
