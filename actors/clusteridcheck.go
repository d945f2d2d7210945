package actors

import (
	"fmt"
	"log/slog"
	"sync"

	"github.com/etcdsync/etcdsync/messages"
)

// defaultClusterID is the ID of an etcd cluster started without
// --initial-cluster-token: two such clusters cannot be told apart.
const defaultClusterID = "7e27652122e8b2ae"

// ClusterIDCheck remembers the etcd cluster ID first seen and checks every
// later observation against it. Not safe for concurrent use.
type ClusterIDCheck struct {
	id string
}

// ClusterIDOutcome is what one cluster ID seen means.
type ClusterIDOutcome struct {
	// Err wraps messages.ErrClusterIDChanged or messages.ErrIndexRegressed
	// when the datastore is no longer the one we synced from.
	Err error
	// First: the ID was learnt by this observation.
	First bool
	// Default: the ID learnt is defaultClusterID; warn the operator once.
	Default bool
}

// ID returns the cluster ID learnt, or "".
func (c *ClusterIDCheck) ID() string { return c.id }

// Check checks a cluster ID seen on any response. An empty ID (etcd
// errors carry none) says nothing.
func (c *ClusterIDCheck) Check(id string) ClusterIDOutcome {
	switch {
	case id == "":
		return ClusterIDOutcome{}
	case c.id == "":
		c.id = id
		return ClusterIDOutcome{First: true, Default: id == defaultClusterID}
	case id != c.id:
		return ClusterIDOutcome{Err: fmt.Errorf("%w: was %s, now %s", messages.ErrClusterIDChanged, c.id, id)}
	}
	return ClusterIDOutcome{}
}

// CheckQuorumRead checks a quorum read: its cluster ID, and its index against
// applied, the highest index merged before the read was sent. A quorum read
// is never stale, so an index below applied means etcd went back in time.
func (c *ClusterIDCheck) CheckQuorumRead(id string, index, applied uint64) ClusterIDOutcome {
	v := c.Check(id)
	if v.Err == nil && index < applied {
		v.Err = fmt.Errorf("%w: quorum read at index %d, below the %d already applied (cluster %s)",
			messages.ErrIndexRegressed, index, applied, c.id)
	}
	return v
}

// SharedClusterIDCheck is the ClusterIDCheck that the actors of one pipeline share:
// the watcher, the snapshot reader and the poller check every cluster ID
// they see with it before anything of the response reaches the merger, so
// that data of a rebuilt cluster is never merged into the old one's state.
// (Reported to the poller instead, a snapshot of the new cluster could be
// merged, and in-sync reported, before the poller escalated.) A new pipeline,
// after a reset, gets a new guard. Safe for concurrent use.
type SharedClusterIDCheck struct {
	mu    sync.Mutex
	check ClusterIDCheck
}

// Check checks a cluster ID seen on a response, logging the ID when it is
// learnt; the error wraps messages.ErrClusterIDChanged.
func (g *SharedClusterIDCheck) Check(id string, log *slog.Logger) error {
	g.mu.Lock()
	v := g.check.Check(id)
	g.mu.Unlock()
	return g.report(v, log)
}

// CheckQuorumRead is ClusterIDCheck.CheckQuorumRead, logged as Check is.
func (g *SharedClusterIDCheck) CheckQuorumRead(id string, index, applied uint64, log *slog.Logger) error {
	g.mu.Lock()
	v := g.check.CheckQuorumRead(id, index, applied)
	g.mu.Unlock()
	return g.report(v, log)
}

func (g *SharedClusterIDCheck) report(v ClusterIDOutcome, log *slog.Logger) error {
	if v.First {
		log.Info("etcd cluster ID known", "clusterID", g.ID())
	}
	if v.Default {
		log.Error("etcd uses the default cluster ID; a rebuilt cluster with the same default ID "+
			"cannot be detected. Start etcd with a unique --initial-cluster-token.", "clusterID", defaultClusterID)
	}
	return v.Err
}

// ID returns the cluster ID learnt, or "".
func (g *SharedClusterIDCheck) ID() string {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.check.ID()
}
