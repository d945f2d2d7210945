package etcdproc

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
)

// EnvBinary names the environment variable that overrides the etcd 3.5
// binary.
const EnvBinary = "ETCDSYNC_ETCD_BIN"

// EnvBinary37 names the environment variable that overrides the etcd 3.7
// binary.
const EnvBinary37 = "ETCDSYNC_ETCD37_BIN"

// ErrNoBinary reports that the etcd binary is missing; the message says how
// to build it.
var ErrNoBinary = errors.New("etcdproc: etcd binary not found (run make etcd)")

// Version is a release line of etcd that the harness can start. The two
// differ in what the harness may ask of them: 3.5 serves the v2 API as
// well (--enable-v2), 3.7 serves the v3 API only (3.6 removed the flag).
type Version int

const (
	// V35 is bin/etcd, etcd 3.5 as pinned in go.mod, serving both APIs.
	// It is the zero value: what every spec got before 3.7 came along.
	V35 Version = iota
	// V37 is bin/etcd37, etcd 3.7 as pinned in e2e/etcd37/go.mod, serving
	// the v3 API only.
	V37
)

// String returns the release line, e.g. "3.5".
func (v Version) String() string {
	switch v {
	case V35:
		return "3.5"
	case V37:
		return "3.7"
	}
	return fmt.Sprintf("Version(%d)", int(v))
}

// ServesV2 reports whether etcd of this version serves the v2 API (as
// started by the harness).
func (v Version) ServesV2() bool { return v == V35 }

// env and file name the binary of v: its environment variable and its
// name in bin/.
func (v Version) binary() (env, file string, err error) {
	switch v {
	case V35:
		return EnvBinary, "etcd", nil
	case V37:
		return EnvBinary37, "etcd37", nil
	}
	return "", "", fmt.Errorf("etcdproc: unknown etcd %v", v)
}

// Binary returns the path of the etcd 3.5 binary: $ETCDSYNC_ETCD_BIN if
// set, else bin/etcd in the nearest directory above the working directory
// that holds go.mod. The error wraps ErrNoBinary. Safe for concurrent use.
func Binary() (string, error) { return BinaryOf(V35) }

// BinaryOf returns the path of the etcd binary of version v, found as
// Binary finds 3.5's: for V37, $ETCDSYNC_ETCD37_BIN if set, else
// bin/etcd37 in the nearest directory above the working directory that
// holds go.mod. The error wraps ErrNoBinary. Safe for concurrent use.
func BinaryOf(v Version) (string, error) {
	env, file, err := v.binary()
	if err != nil {
		return "", err
	}
	if p := os.Getenv(env); p != "" {
		if err := checkExecutable(p); err != nil {
			return "", fmt.Errorf("%w: $%s=%s: %w", ErrNoBinary, env, p, err)
		}
		return p, nil
	}
	wd, err := os.Getwd()
	if err != nil {
		return "", fmt.Errorf("%w: working directory: %w", ErrNoBinary, err)
	}
	for dir := wd; ; {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			p := filepath.Join(dir, "bin", file)
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
