package etcdproc

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"time"
)

// Backup is a copy of every member's data directory, taken by
// Cluster.Backup and put back by Cluster.Restore.
type Backup struct {
	c     *Cluster
	dirs  []string // by member
	index uint64
	rev   int64
}

// Index is the cluster's v2 index (X-Etcd-Index of a quorum read) when
// the backup was taken; 0 on a cluster that serves no v2 API (3.7).
func (b *Backup) Index() uint64 { return b.index }

// Revision is the cluster's v3 revision (the header of a linearizable
// read) when the backup was taken.
func (b *Backup) Revision() int64 { return b.rev }

// Backup copies the data directory of every member, as a snapshot of the
// machines would. For a consistent copy it stops the running members
// (SIGTERM, as StopMember does), copies, and starts them again, waiting
// until they serve: the cluster is briefly unavailable, its watches are
// cut, and the restart
// takes one v2 index per member (each publishes its attributes again), as
// every restart does.
func (c *Cluster) Backup() (*Backup, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.stopped {
		return nil, ErrStopped
	}
	b := &Backup{c: c}
	var err error
	if c.opts.Version.ServesV2() {
		for _, m := range c.members {
			if m.running() {
				if b.index, err = v2Index(c.httpClient(5*time.Second), m.clientURL); err == nil {
					break
				}
			}
		}
		if err != nil || b.index == 0 {
			return nil, fmt.Errorf("etcdproc: backup: read index: %w", errors.Join(err, errors.New("no member serves")))
		}
	}
	var running []string
	for _, m := range c.members {
		if m.running() {
			running = append(running, m.clientURL)
		}
	}
	if b.rev, err = c.revision(running); err != nil || b.rev == 0 {
		return nil, fmt.Errorf("etcdproc: backup: %w", errors.Join(err, errors.New("no member serves")))
	}
	var wasRunning []*member
	for _, m := range c.members {
		if m.running() {
			wasRunning = append(wasRunning, m)
		}
	}
	if err := c.stopAll(wasRunning, memberGrace); err != nil {
		return nil, err
	}
	c.backups++
	for _, m := range c.members {
		dir := filepath.Join(c.dir, fmt.Sprintf("backup%d-%s", c.backups, m.name))
		if err := copyDir(m.dataDir, dir); err != nil {
			return nil, fmt.Errorf("etcdproc: backup of %s: %w", m.name, err)
		}
		b.dirs = append(b.dirs, dir)
	}
	return b, c.startAll(wasRunning)
}

// Restore kills every member and starts it again on its data directory
// as it was at b: the same cluster ID, the same content, the v2 index of
// the backup (plus one per member for the restart) and its v3 revision
// (restarts take none). b can be restored more than once.
func (c *Cluster) Restore(b *Backup) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.stopped {
		return ErrStopped
	}
	if b == nil || b.c != c {
		return errors.New("etcdproc: restore: not a backup of this cluster")
	}
	if err := c.wipe(); err != nil {
		return err
	}
	c.gen++
	for i, m := range c.members {
		m.dataDir = filepath.Join(c.dir, fmt.Sprintf("g%d-%s", c.gen, m.name))
		if err := copyDir(b.dirs[i], m.dataDir); err != nil {
			return fmt.Errorf("etcdproc: restore of %s: %w", m.name, err)
		}
	}
	return c.startAll(c.members)
}

// startAll starts members on their existing data directories together
// (each needs the others for a quorum) and waits until all serve.
func (c *Cluster) startAll(ms []*member) error {
	for _, m := range ms {
		if err := c.launch(m, nil); err != nil {
			return err
		}
	}
	for _, m := range ms {
		if err := c.waitReady(m); err != nil {
			return err
		}
	}
	return nil
}

// v2Index reads X-Etcd-Index with a quorum GET of the root, through hc:
// the cluster's client, which knows the members' TLS.
func v2Index(hc *http.Client, clientURL string) (uint64, error) {
	resp, err := hc.Get(clientURL + "/v2/keys/?quorum=true")
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, resp.Body)
	return strconv.ParseUint(resp.Header.Get("X-Etcd-Index"), 10, 64)
}

// copyDir copies the tree at src to dst, which must not exist yet.
func copyDir(src, dst string) error {
	return filepath.WalkDir(src, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(src, p)
		if err != nil {
			return err
		}
		target := filepath.Join(dst, rel)
		info, err := d.Info()
		if err != nil {
			return err
		}
		if d.IsDir() {
			return os.MkdirAll(target, info.Mode().Perm()|0o700)
		}
		if !info.Mode().IsRegular() {
			return fmt.Errorf("copy %s: not a regular file", p)
		}
		return copyFile(p, target, info.Mode().Perm())
	})
}

func copyFile(src, dst string, perm os.FileMode) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL, perm)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		_ = out.Close()
		return err
	}
	return out.Close()
}
