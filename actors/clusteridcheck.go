package actors

import (
	"fmt"

	"github.com/etcdsync/etcdsync/messages"
)

// DefaultClusterID is the ID of an etcd cluster started without
// --initial-cluster-token: two such clusters cannot be told apart.
const DefaultClusterID = "7e27652122e8b2ae"

// ClusterIDCheck remembers the etcd cluster ID first seen and judges every
// later observation against it. Not safe for concurrent use.
type ClusterIDCheck struct {
	id string
}

// ClusterIDVerdict is what one observation means.
type ClusterIDVerdict struct {
	// Err wraps messages.ErrClusterIDChanged or messages.ErrIndexRegressed
	// when the datastore is no longer the one we synced from.
	Err error
	// First: the ID was learnt by this observation.
	First bool
	// Default: the ID learnt is DefaultClusterID; warn the operator once.
	Default bool
}

// ID returns the cluster ID learnt, or "".
func (c *ClusterIDCheck) ID() string { return c.id }

// ObserveID judges a cluster ID seen on any response. An empty ID (etcd
// errors carry none) says nothing.
func (c *ClusterIDCheck) ObserveID(id string) ClusterIDVerdict {
	switch {
	case id == "":
		return ClusterIDVerdict{}
	case c.id == "":
		c.id = id
		return ClusterIDVerdict{First: true, Default: id == DefaultClusterID}
	case id != c.id:
		return ClusterIDVerdict{Err: fmt.Errorf("%w: was %s, now %s", messages.ErrClusterIDChanged, c.id, id)}
	}
	return ClusterIDVerdict{}
}

// ObservePoll judges a quorum read: its cluster ID, and its index against
// applied, the highest index merged before the read was sent. A quorum read
// is never stale, so an index below applied means etcd went back in time.
func (c *ClusterIDCheck) ObservePoll(id string, index, applied uint64) ClusterIDVerdict {
	v := c.ObserveID(id)
	if v.Err == nil && index < applied {
		v.Err = fmt.Errorf("%w: quorum read at index %d, below the %d already applied (cluster %s)",
			messages.ErrIndexRegressed, index, applied, c.id)
	}
	return v
}
