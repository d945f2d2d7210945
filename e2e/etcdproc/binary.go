package etcdproc

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
)

// EnvBinary names the environment variable that overrides the etcd binary.
const EnvBinary = "ETCDSYNC_ETCD_BIN"

// ErrNoBinary reports that the etcd binary is missing; the message says how
// to build it.
var ErrNoBinary = errors.New("etcdproc: etcd binary not found (run make etcd)")

// Binary returns the path of the etcd binary: $ETCDSYNC_ETCD_BIN if set,
// else bin/etcd in the nearest directory above the working directory that
// holds go.mod. The error wraps ErrNoBinary. Safe for concurrent use.
func Binary() (string, error) {
	if p := os.Getenv(EnvBinary); p != "" {
		if err := checkExecutable(p); err != nil {
			return "", fmt.Errorf("%w: $%s=%s: %w", ErrNoBinary, EnvBinary, p, err)
		}
		return p, nil
	}
	wd, err := os.Getwd()
	if err != nil {
		return "", fmt.Errorf("%w: working directory: %w", ErrNoBinary, err)
	}
	for dir := wd; ; {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			p := filepath.Join(dir, "bin", "etcd")
			if err := checkExecutable(p); err != nil {
				return "", fmt.Errorf("%w: %w", ErrNoBinary, err)
			}
			return p, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", fmt.Errorf("%w: no go.mod in %s or above", ErrNoBinary, wd)
		}
		dir = parent
	}
}

func checkExecutable(p string) error {
	fi, err := os.Stat(p)
	if err != nil {
		return err
	}
	if fi.IsDir() || fi.Mode().Perm()&0o111 == 0 {
		return fmt.Errorf("%s is not an executable file", p)
	}
	return nil
}
